"""Fresh notebook kernels, started ahead of need and shut down in the background.

Every notebook of a run still gets a new kernel of its own (no state passes between records). The
pool only takes kernel start-up, the kit's imports and kernel shutdown off the run's critical path:
while one notebook executes, the next kernel starts and imports `mirrorkit.notebook.runbook` and pandas
(the import is silent: no execution count, no history, nothing in the record); a finished
notebook's kernel shuts down while the next one runs.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

# What every runbook notebook imports first; loading it early is the largest cost of a kernel after
# the interpreter itself (pandas ≈ 0.3 s, see docs/performance.md).
PRELOAD = "import mirrorkit.notebook.runbook, pandas"
# as nbclient does: kernels of parallel notebooks must not share one IPython history database
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
# ZeroMQ over Unix sockets in a private directory: no TCP ports to race for and none open to other
# users of the machine (ZeroMQ has no ipc transport on Windows)
IPC = sys.platform != "win32"


class KernelStartError(RuntimeError):
    pass


@dataclass
class Kernel:
    manager: object        # jupyter_client AsyncKernelManager
    client: object         # its AsyncKernelClient, connected and ready


class KernelPool:
    """Hands out started kernels (`take`) and keeps up to `ahead` more starting, never more than
    `needed` in all; `retire` shuts a used kernel down in the background; `close` ends everything."""

    def __init__(self, needed: int, ahead: int, *, cwd: Path, kernel_name: str = "python3",
                 preload: str = PRELOAD, startup_timeout: float = 120, shutdown_wait: float = 2.0,
                 log: Callable[[str], None] = lambda s: None):
        self.cwd, self.kernel_name, self.preload = str(cwd), kernel_name, preload
        self.startup_timeout, self.shutdown_wait, self.log = startup_timeout, shutdown_wait, log
        self._left = needed                      # kernels not yet asked for
        self._lock = threading.Lock()
        self._starting: list[Future] = []
        self._starter = ThreadPoolExecutor(max_workers=max(1, ahead), thread_name_prefix="kernel-start")
        self._reaper = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kernel-stop")
        self._stopping: list[Future] = []
        self._busy: list[Kernel] = []            # taken and not yet retired
        self._started = 0
        self._closed = False
        self._interrupt = threading.Event()
        self._interrupter = threading.Thread(target=self._interrupt_when_asked, name="kernel-interrupt", daemon=True)
        self._interrupter.start()
        self._ipc_dir = tempfile.mkdtemp(prefix="mk-kernels-")
        for _ in range(min(max(1, ahead), needed)):
            self._start_one()

    def _start_one(self) -> None:
        if self._left <= 0:
            return
        self._left -= 1
        self._starting.append(self._starter.submit(self._start))

    def take(self) -> Kernel:
        """A started, warmed kernel (waits for one if none is ready yet)."""
        with self._lock:
            if not self._starting:
                self._left += 1                 # asked for more than announced: start one now
                self._start_one()
            future = self._starting.pop(0)
            self._start_one()
        kernel = future.result()
        with self._lock:
            self._busy.append(kernel)
        return kernel

    def retire(self, kernel: Kernel) -> None:
        with self._lock:
            if kernel in self._busy:
                self._busy.remove(kernel)
            self._stopping.append(self._reaper.submit(self._stop, kernel))

    def interrupt_busy(self) -> None:
        """Interrupt every kernel in use, as Jupyter's interrupt button does (`interrupt_kernel`: SIGINT
        for ipykernel). Safe in a signal handler: it only sets an event that a thread of the pool waits
        on (the main thread sets it again only in `close`, after the runner's handler is gone)."""
        self._interrupt.set()

    def close(self) -> None:
        """Shut down kernels never taken and wait for every shutdown (each bounded by shutdown_wait)."""
        with self._lock:
            self._left = 0
            spare, self._starting = self._starting, []
        for future in spare:
            try:
                self.retire(future.result())
            except Exception:   # a kernel that never started has nothing to stop
                pass
        self._starter.shutdown(wait=True)
        for future in list(self._stopping):
            future.result()
        self._reaper.shutdown(wait=True)
        self._closed = True
        self._interrupt.set()
        self._interrupter.join()
        shutil.rmtree(self._ipc_dir, ignore_errors=True)

    def __enter__(self) -> "KernelPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- in the pool's threads -----------------------------------------------------------------------
    def _start(self) -> Kernel:
        error: Optional[BaseException] = None
        for attempt in range(3):
            try:
                return asyncio.run(self._start_async())
            except Exception as exc:   # e.g. TCP port races between kernels starting at once (papermill#511)
                error = exc
                self.log(f"  kernel start failed ({exc.__class__.__name__}: {exc}), retrying")
        raise KernelStartError(f"could not start a {self.kernel_name} kernel: {error}") from error

    async def _start_async(self) -> "Kernel":
        from jupyter_client.manager import AsyncKernelManager
        km = AsyncKernelManager(kernel_name=self.kernel_name)
        with self._lock:
            self._started += 1
            number = self._started
        if IPC:
            km.transport = "ipc"
            km.ip = os.path.join(self._ipc_dir, f"k{number}")
        km.shutdown_wait_time = self.shutdown_wait
        # the kernel's own logging (not the notebook's outputs, which travel over IOPub) goes to a file in
        # the private directory, so that a kernel abandoned by a second Ctrl-C cannot write tracebacks
        # into the operator's terminal
        with open(os.path.join(self._ipc_dir, f"kernel-{number}.log"), "ab") as kernel_log:
            await km.start_kernel(cwd=self.cwd, extra_arguments=list(KERNEL_ARGUMENTS), stdout=subprocess.DEVNULL,
                                  stderr=kernel_log)
        kc = km.client()
        kc.start_channels()
        try:
            # the first kernel_info often loses its IOPub reply to the subscription still being set
            # up, costing jupyter_client a 0.2 s wait: one more reason to connect ahead of need
            await kc.wait_for_ready(timeout=self.startup_timeout)
            if self.preload:
                await self._run_silently(kc, self.preload)
        except BaseException:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            raise
        return Kernel(km, kc)

    async def _run_silently(self, kc, code: str) -> None:
        """Run code without a trace in the kernel's history or outputs, and drain its IOPub messages
        so that the notebook's client starts with nothing queued. A failing import is left for the
        notebook's own first cell to show."""
        msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        while (await kc.get_shell_msg(timeout=self.startup_timeout))["parent_header"].get("msg_id") != msg_id:
            pass
        while True:
            msg = await kc.get_iopub_msg(timeout=self.startup_timeout)
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"):
                return

    def _interrupt_when_asked(self) -> None:
        while True:
            self._interrupt.wait()
            if self._closed:
                return
            self._interrupt.clear()
            for kernel in list(self._busy):
                try:
                    asyncio.run(kernel.manager.interrupt_kernel())
                except Exception as exc:   # e.g. the kernel ended meanwhile
                    self.log(f"  kernel interrupt: {exc.__class__.__name__}: {exc}")

    def _stop(self, kernel: "Kernel") -> None:
        km = kernel.manager
        try:
            kernel.client.stop_channels()
        except Exception:
            pass
        try:
            asyncio.run(km.shutdown_kernel(now=False))
        except Exception as exc:
            self.log(f"  kernel shutdown: {exc.__class__.__name__}: {exc}")
            try:
                asyncio.run(km.shutdown_kernel(now=True))
            except Exception:
                pass
