"""The runner's kernels (mirrorkit.kernels, mirrorkit.execution.kernel_fork, mirrorkit.execution.kernel_zygote).

A forked kernel must be indistinguishable, for a notebook, from one started the usual way: its own
process and session, the working directory and environment of the moment it was asked for, fresh
random state, a first cell numbered 1, interrupts that work; and nothing may outlive the run, also
when the runner itself is killed.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mirrorkit.execution import kernel_fork
from mirrorkit.execution.kernels import KernelPool

pytestmark = pytest.mark.skipif(not kernel_fork.supported(), reason="forked kernels need Linux with pidfd")


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


def test_a_pool_kernel_is_forked_from_the_zygote_and_talks_over_unix_sockets(pool, tmp_path):
    kernel = pool.take()
    try:
        process = kernel.manager.provisioner.process
        assert isinstance(process, kernel_fork.ForkedProcess)
        assert kernel.manager.transport == "ipc"
        facts = json.loads(run_code(kernel, textwrap.dedent("""
            import json, os, signal, sys
            print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
                              "signals": [str(signal.getsignal(s)) for s in (signal.SIGPIPE, signal.SIGCHLD,
                                                                              signal.SIGTERM, signal.SIGHUP)],
                              "argv0": sys.argv[0], "sid": os.getsid(0),
                              "preloaded": "pandas" in sys.modules and "mirrorkit.notebook.runbook" in sys.modules}))
        """))["stdout"])
        assert facts["pid"] == process.pid and facts["ppid"] == pool._zygote.process.pid
        assert facts["cwd"] == str(tmp_path)
        assert facts["sid"] == facts["pid"]            # its own session, as jupyter_client starts kernels
        assert facts["preloaded"]
        # signal dispositions as a new interpreter has them (Python ignores SIGPIPE itself)
        assert facts["signals"] == [str(signal.SIG_IGN), str(signal.SIG_DFL), str(signal.SIG_DFL), str(signal.SIG_DFL)]
        assert facts["argv0"].endswith("ipykernel_launcher.py")
    finally:
        pool.retire(kernel)


def test_a_kernel_gets_the_environment_of_its_start_not_the_zygotes(tmp_path, monkeypatch):
    monkeypatch.setenv("MK_TEST_GONE", "present-when-the-zygote-started")
    with KernelPool(1, 1, cwd=tmp_path) as p:
        p.retire(p.take())                               # the zygote runs, with MK_TEST_GONE set
        monkeypatch.setenv("MK_TEST_LATE", "set-after-the-zygote-started")
        monkeypatch.delenv("MK_TEST_GONE")
        kernel = p.take()                                # started now, from the same zygote
        try:
            out = run_code(kernel, "import os; print(os.environ.get('MK_TEST_LATE'), os.environ.get('MK_TEST_GONE'), "
                                   "os.environ.get('JPY_PARENT_PID'))")["stdout"].split()
        finally:
            p.retire(kernel)
        assert out == ["set-after-the-zygote-started", "None", str(p._zygote.process.pid)]


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


def test_an_interrupt_reaches_a_forked_kernel(pool):
    kernel = pool.take()
    try:
        async def interrupt_later():
            await asyncio.sleep(1.0)
            await kernel.manager.interrupt_kernel()
        loop = asyncio.new_event_loop()
        kc = kernel.client
        msg_id = kc.execute("import time; time.sleep(30)")
        t0 = time.monotonic()
        loop.run_until_complete(interrupt_later())

        async def reply():
            while True:
                msg = await kc.get_shell_msg(timeout=20)
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg["content"]
        content = loop.run_until_complete(reply())
        assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - t0 < 10
    finally:
        pool.retire(kernel)


def test_a_dead_kernel_is_seen_dead(pool):
    kernel = pool.take()
    pid = kernel.manager.provisioner.process.pid
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
    pids = [taken.manager.provisioner.process.pid]
    p.retire(taken)
    zygote = p._zygote.process.pid
    p.close()
    time.sleep(0.2)
    assert not alive(zygote) and not any(alive(pid) for pid in pids)
    assert not Path(p._ipc_dir).exists()


def test_kernels_end_when_the_runner_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import json, os, signal, sys
        from pathlib import Path
        from mirrorkit.execution.kernels import KernelPool
        p = KernelPool(2, 1, cwd=Path({str(tmp_path)!r}))
        k = p.take()
        print(json.dumps({{"zygote": p._zygote.process.pid, "kernel": k.manager.provisioner.process.pid}}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -signal.SIGKILL
    pids = json.loads(proc.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids.values()):
        assert time.monotonic() < deadline, f"left behind: {pids}"
        time.sleep(0.1)


def test_spawn_switch_starts_kernels_the_usual_way(tmp_path, monkeypatch):
    monkeypatch.setenv(kernel_fork.ENV_SWITCH, "spawn")
    with KernelPool(1, 1, cwd=tmp_path) as p:
        kernel = p.take()
        try:
            assert p._zygote is None
            assert isinstance(kernel.manager.provisioner.process, subprocess.Popen)
            assert run_code(kernel, "print(6 * 7)")["stdout"].strip() == "42"
        finally:
            p.retire(kernel)


def test_a_broken_kernelspec_falls_back_and_says_why(tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr(kernel_fork, "Zygote", lambda python: (_ for _ in ()).throw(kernel_fork.ZygoteError("boom")))
    with KernelPool(1, 1, cwd=tmp_path, log=said.append) as p:
        kernel = p.take()
        try:
            assert isinstance(kernel.manager.provisioner.process, subprocess.Popen)
        finally:
            p.retire(kernel)
    assert any("usual way" in s and "boom" in s for s in said)


def test_forked_process_never_signals_a_finished_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    watched = kernel_fork.ForkedProcess(child.pid)
    child.wait()
    assert watched.wait(timeout=5) == -1
    watched.kill()                      # a no-op: the pidfd is closed, no signal goes to a reused pid
    assert watched.poll() == -1


def test_the_zygote_forks_with_one_thread(pool):
    """A fork keeps only the forking thread: a thread started by an import (a BLAS pool, say) would be
    missing in every kernel, with whatever locks it held."""
    kernel = pool.take()
    try:
        assert len(os.listdir(f"/proc/{pool._zygote.process.pid}/task")) == 1
    finally:
        pool.retire(kernel)


def test_a_forked_kernel_looks_like_a_spawned_one(tmp_path, monkeypatch):
    """What a notebook can observe of its process, forked against started the usual way."""
    probe = textwrap.dedent("""
        import json, os, signal, sys
        names = ("SIGPIPE", "SIGCHLD", "SIGTERM", "SIGHUP", "SIGXFSZ", "SIGINT", "SIGUSR1")
        umask = os.umask(0); os.umask(umask)
        print(json.dumps({
            "signals": {n: str(signal.getsignal(getattr(signal, n))) for n in names},
            "path": sys.path, "flags": str(sys.flags), "argv0": os.path.basename(sys.argv[0]),
            "cwd": os.getcwd(), "umask": umask, "sid_is_pid": os.getsid(0) == os.getpid(),
            "main": sys.modules["__main__"].__name__, "stdin": os.path.realpath("/proc/self/fd/0"),
            "env": sorted(k for k in os.environ if not k.startswith("JPY_"))}))
    """)
    seen = {}
    for launch in ("fork", "spawn"):
        monkeypatch.setenv(kernel_fork.ENV_SWITCH, launch)
        with KernelPool(1, 1, cwd=tmp_path) as p:
            kernel = p.take()
            try:
                assert isinstance(kernel.manager.provisioner.process,
                                  kernel_fork.ForkedProcess if launch == "fork" else subprocess.Popen)
                seen[launch] = json.loads(run_code(kernel, probe)["stdout"])
            finally:
                p.retire(kernel)
    fork, spawn = seen["fork"], seen["spawn"]
    assert set(fork["env"]) ^ set(spawn["env"]) == set(), "environment variables differ"
    # jupyter_client gives a spawned kernel a pipe nobody writes to as stdin, the zygote /dev/null
    assert spawn["stdin"].startswith("/proc/") and fork.pop("stdin") == "/dev/null"
    spawn.pop("stdin")
    assert fork == spawn
