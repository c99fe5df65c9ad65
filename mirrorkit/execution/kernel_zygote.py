"""A kernel zygote: one process that has already imported ipykernel, the kit and pandas, and forks a
fresh kernel from itself for each notebook of a run (Linux; see mirrorkit.execution.kernels).

    python -m mirrorkit.execution.kernel_zygote REQUEST_FD REPLY_FD

Requests are JSON lines {"argv": [...], "cwd": ..., "env": {...}} where argv is the kernel command a
kernelspec gives (`python -m ipykernel_launcher -f FILE ...`); each reply is {"pid": N} or {"error": ...}.
The child becomes what that command would have started: its own session, the requested working
directory and environment (plus what the zygote's imports set in theirs, as they would have in the
kernel), default signal handlers, `sys.argv` and `sys.path` as ipykernel_launcher leaves them; only its
stdin is /dev/null rather than a pipe nobody writes to (tests/kit/test_kernels.py compares the two).
End of the requests (the runner closed the pipe or died) ends the zygote and its kernels.
In `ps`, a forked kernel keeps the zygote's command line.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

# what a kernel imports before and while it initialises (ipykernel's shell, its debugger), and what
# every runbook notebook imports first
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
           "IPython.core.completerlib", "IPython.core.debugger", "IPython.extensions.storemagic",
           "tornado.queues", "sqlite3", "mirrorkit.notebook.runbook", "pandas")
# only while importing: one BLAS thread (a fork keeps only the forking thread), and no pydevd warning
# about frozen modules on the runner's terminal (the debugger is not used in batch runs)
IMPORT_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
LAUNCHER = ["-m", "ipykernel_launcher"]

_children: set[int] = set()
_MODULE_PATH_ENTRY = sys.path[0] if sys.path else ""
_SET_BY_IMPORTS: dict[str, str] = {}     # e.g. debugpy sets PYDEVD_USE_FRAME_EVAL=NO when imported


def _reap(signum=None, frame=None) -> None:
    while _children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            _children.clear()
            return
        if pid == 0:
            return
        _children.discard(pid)


def _preload() -> None:
    before = dict(os.environ)
    added = [k for k in IMPORT_ENV if k not in os.environ]
    for k in added:
        os.environ[k] = IMPORT_ENV[k]
    import gc
    import importlib
    for name in PRELOAD:
        importlib.import_module(name)
    for k in added:
        del os.environ[k]
    _SET_BY_IMPORTS.update((k, v) for k, v in os.environ.items() if k not in before)
    gc.freeze()     # keep the imported objects out of the children's collections: fewer copied pages


def _become_kernel(request: dict, pipes) -> int:
    """In the forked child: turn into `python -m ipykernel_launcher ARGS` and run the kernel."""
    for pipe in pipes:
        pipe.close()
    os.setsid()
    # undo what the zygote changed; the rest (SIGPIPE ignored, …) is already as a new interpreter has it
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request.get("cwd") or os.getcwd())
    os.environ.clear()
    os.environ.update(request["env"])
    for k, v in _SET_BY_IMPORTS.items():    # what those imports would have set in a new kernel
        os.environ.setdefault(k, v)
    argv = request["argv"]
    import importlib.util
    sys.argv = [importlib.util.find_spec("ipykernel_launcher").origin] + argv[3:]
    if os.environ.get("JPY_PARENT_PID"):
        # ipykernel read this variable into a class default at import time, in the zygote
        sys.argv.append(f"--IPKernelApp.parent_handle={int(os.environ['JPY_PARENT_PID'])}")
    # `python -m` put the zygote's working directory first; ipykernel_launcher removes that entry
    if sys.path and sys.path[0] in ("", _MODULE_PATH_ENTRY):
        del sys.path[0]
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()
    return 0


def _stop_children() -> None:
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 1.0)):
        for pid in list(_children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                _children.discard(pid)
        deadline = time.monotonic() + wait
        while _children and time.monotonic() < deadline:
            _reap()
            time.sleep(0.02)


def main(argv: list[str]) -> int:
    request_fd, reply_fd = int(argv[0]), int(argv[1])
    _preload()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the runner decides when kernels end
    requests = os.fdopen(request_fd, "r", encoding="utf-8")
    replies = os.fdopen(reply_fd, "w", encoding="utf-8")
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    replies.flush()
    for line in requests:
        try:
            request = json.loads(line)
            if request.get("argv", [])[1:3] != LAUNCHER:
                raise ValueError(f"not an ipykernel command: {request.get('argv')}")
            pid = os.fork()
        except Exception as exc:
            replies.write(json.dumps({"error": f"{exc.__class__.__name__}: {exc}"}) + "\n")
            replies.flush()
            continue
        if pid == 0:
            return _become_kernel(request, (requests, replies))
        _children.add(pid)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
    _stop_children()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
