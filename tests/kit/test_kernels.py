"""The runner's kernels (mirrorkit.execution.kernels.KernelPool).

A pool kernel must be, for a notebook, a kernel started the usual way: its own process and session,
the working directory and environment of the moment it was asked for, fresh random state, a first
cell numbered 1 (the silent preload leaves no trace), interrupts that work; and nothing may outlive
the run, also when the runner itself is killed.
"""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mirrorkit.execution.kernels import KernelPool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process checks read /proc")


def run_code(kernel, code: str, timeout: float = 30) -> dict:
    """Execute code on a pool kernel's client; the reply content plus the text it printed."""
    async def go():
        kc = kernel.client
        msg_id = kc.execute(code, store_history=True)
        out, reply = [], None
        while True:
            msg = await kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        while reply is None:
            msg = await kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                reply = msg["content"]
        return {**reply, "stdout": "".join(out)}
    return asyncio.new_event_loop().run_until_complete(go())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def pool(tmp_path):
    p = KernelPool(4, 1, cwd=tmp_path)
    yield p
    p.close()


def test_a_pool_kernel_is_preloaded_and_talks_over_unix_sockets(pool, tmp_path):
    kernel = pool.take()
    try:
        assert kernel.manager.transport == "ipc"
        assert Path(kernel.manager.ip).parent == Path(pool._ipc_dir)
        assert Path(pool._ipc_dir).stat().st_mode & 0o077 == 0          # private to this user
        facts = json.loads(run_code(kernel, textwrap.dedent("""
            import json, os, sys
            print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "sid": os.getsid(0),
                              "preloaded": "pandas" in sys.modules and "mirrorkit.notebook.runbook" in sys.modules}))
        """))["stdout"])
        assert facts["cwd"] == str(tmp_path)
        assert facts["sid"] == facts["pid"]            # its own session, as jupyter_client starts kernels
        assert facts["preloaded"]
    finally:
        pool.retire(kernel)


def test_kernels_have_fresh_random_state_and_numbering(pool):
    a, b = pool.take(), pool.take()
    try:
        code = "import random, uuid; print(random.random(), uuid.uuid4())"
        ra, rb = run_code(a, code), run_code(b, code)
        assert ra["stdout"] != rb["stdout"]
        assert ra["execution_count"] == 1 and rb["execution_count"] == 1   # the silent preload left no trace
    finally:
        pool.retire(a)
        pool.retire(b)


def kernel_pid(kernel) -> int:
    return int(run_code(kernel, "import os; print(os.getpid())")["stdout"])


def test_interrupt_busy_interrupts_the_kernels_in_use(pool):
    kernel = pool.take()
    try:
        kc = kernel.client
        msg_id = kc.execute("import time; time.sleep(30)")
        t0 = time.monotonic()
        time.sleep(1.0)
        pool.interrupt_busy()           # as the runner's SIGINT handler calls it

        async def reply():
            while True:
                msg = await kc.get_shell_msg(timeout=20)
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg["content"]
        content = asyncio.new_event_loop().run_until_complete(reply())
        assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - t0 < 10
    finally:
        pool.retire(kernel)


def test_a_dead_kernel_is_seen_dead(pool):
    kernel = pool.take()
    pid = kernel_pid(kernel)
    kernel.client.execute("import os; os._exit(3)")
    deadline = time.monotonic() + 10
    while asyncio.new_event_loop().run_until_complete(kernel.manager.is_alive()):
        assert time.monotonic() < deadline, "the manager still thinks the kernel is alive"
        time.sleep(0.05)
    assert not alive(pid)
    pool.retire(kernel)


def test_close_leaves_no_process_behind(tmp_path):
    p = KernelPool(3, 2, cwd=tmp_path)
    taken = p.take()                                   # one used, the others never taken
    pids = [kernel_pid(taken)]
    p.retire(taken)
    p.close()
    time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)
    assert not Path(p._ipc_dir).exists()
    assert not p._interrupter.is_alive()


def test_kernels_end_when_the_runner_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import json, os, signal, sys
        from pathlib import Path
        from mirrorkit.execution.kernels import KernelPool
        p = KernelPool(2, 2, cwd=Path({str(tmp_path)!r}))
        taken = p.take()
        spare = p._starting[0].result()
        print(json.dumps([k.manager.provisioner.pid for k in (taken, spare)]), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pids = json.loads(proc.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"left behind: {pids}"
        time.sleep(0.1)
