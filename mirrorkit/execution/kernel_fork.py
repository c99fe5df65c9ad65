"""Kernels forked from a zygote (mirrorkit.execution.kernel_zygote) instead of started from nothing.

A kernel started from nothing spends ≈ 0.35 CPU-s on the interpreter and ipykernel and ≈ 0.4 CPU-s on
importing the kit and pandas before the notebook's first cell (docs/performance.md). Forked from a
process that did that once, it starts in ≈ 0.1 s. Only on Linux (fork, pidfd), only for a kernelspec
that runs `PYTHON -m ipykernel_launcher`, and only when that PYTHON can import mirrorkit; otherwise
kernels start the usual way. MIRRORKIT_KERNEL_LAUNCH=spawn turns it off.

The forked kernel is the zygote's child, not ours, so it is watched and signalled through a pidfd,
which cannot reach another process that later reuses the pid.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from typing import Optional

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

ENV_SWITCH = "MIRRORKIT_KERNEL_LAUNCH"


def supported() -> bool:
    return (sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")
            and os.environ.get(ENV_SWITCH, "fork") != "spawn")


class ZygoteError(RuntimeError):
    pass


class Zygote:
    """The client side: starts `python -m mirrorkit.execution.kernel_zygote` and asks it for kernels."""

    def __init__(self, python: str, timeout: float = 60):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            self.process = subprocess.Popen([python, "-m", "mirrorkit.execution.kernel_zygote", str(req_r), str(rep_w)],
                                            pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        finally:
            os.close(req_r)
            os.close(rep_w)
        self._requests = os.fdopen(req_w, "w", encoding="utf-8")
        self._replies = os.fdopen(rep_r, "r", encoding="utf-8")
        self._lock = threading.Lock()
        ready = self._read(timeout)
        if "ready" not in ready:
            self.close()
            raise ZygoteError(f"the kernel zygote did not start: {ready}")

    def _read(self, timeout: float) -> dict:
        if not select.select([self._replies], [], [], timeout)[0]:
            raise ZygoteError(f"no answer from the kernel zygote within {timeout:.0f} s")
        line = self._replies.readline()
        if not line:
            raise ZygoteError(f"the kernel zygote exited (code {self.process.poll()})")
        return json.loads(line)

    def spawn(self, argv: list[str], cwd: Optional[str], env: dict) -> int:
        env = dict(env)
        env["JPY_PARENT_PID"] = str(self.process.pid)   # the kernel exits if the zygote goes
        with self._lock:
            self._requests.write(json.dumps({"argv": argv, "cwd": cwd, "env": env}) + "\n")
            self._requests.flush()
            reply = self._read(30)
        if "pid" not in reply:
            raise ZygoteError(reply.get("error", str(reply)))
        return reply["pid"]

    def close(self) -> None:
        try:
            self._requests.close()       # end of requests: the zygote stops its kernels and exits
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._replies.close()


class ForkedProcess:
    """The subset of subprocess.Popen that jupyter_client's LocalProvisioner uses, for a pid we did
    not fork ourselves. The exit code is not ours to collect, so a finished kernel reports -1."""
    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self._pidfd: Optional[int] = os.pidfd_open(pid)
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self._finished()
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            self._finished()
        return self.returncode

    def _finished(self) -> None:
        os.close(self._pidfd)
        self._pidfd, self.returncode = None, -1

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel process comes from a Zygote."""
    zygote: Optional[Zygote] = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        provisioner = self.provisioner
        if self.zygote is None or type(provisioner) is not LocalProvisioner:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        cwd = kw.get("cwd")
        pid = self.zygote.spawn([os.path.expanduser(a) for a in kernel_cmd], str(cwd) if cwd else None,
                                kw.get("env") or dict(os.environ))
        provisioner.process = ForkedProcess(pid)
        provisioner.pid, provisioner.pgid, provisioner.cwd = pid, None, cwd
        self._reconcile_connection_info(provisioner.connection_info)


def zygote_for(kernel_name: str, log=lambda s: None) -> Optional[Zygote]:
    """A zygote for this kernelspec, or None (then kernels start the usual way) with the reason logged."""
    if not supported():
        return None
    from jupyter_client.manager import KernelManager
    try:   # the command jupyter_client would run ("python" resolved to this interpreter, as it does)
        argv = KernelManager(kernel_name=kernel_name).format_kernel_cmd()
    except Exception as exc:
        log(f"  kernels start the usual way: kernelspec {kernel_name}: {exc}")
        return None
    if len(argv) < 3 or argv[1:3] != ["-m", "ipykernel_launcher"]:
        log(f"  kernels start the usual way: kernelspec {kernel_name} does not run ipykernel_launcher")
        return None
    try:
        return Zygote(argv[0])
    except (OSError, ZygoteError) as exc:
        log(f"  kernels start the usual way: {exc}")
        return None
