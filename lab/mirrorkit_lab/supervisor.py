"""`mirrorkit lab up|down|kill|freeze|thaw|cp|cut|heal|clock`: start, stop and break instance processes,
rehearse faults.

State directory (default .mirrorkit-lab/): lab.json (instances, pids, what a rehearsal did to
them), sa.password (0600), faults.json (lab cut/clock, read by every instance), instances/<name>/
(store, server file system, logs). `mirrorkit lab status` is in status.py.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .config import InstanceSpec, LabConfigError, load_instances
from .process import instance_home

DEFAULT_STATE_DIR = Path(".mirrorkit-lab")
SA_PASSWORD_ENV = "MIRRORKIT_LAB_SA_PASSWORD"
START_TIMEOUT = 30.0


class LabError(Exception):
    pass


def state_dir_from(arg: Optional[str]) -> Path:
    return Path(arg or os.environ.get("MIRRORKIT_LAB_STATE_DIR") or DEFAULT_STATE_DIR)


def password_file(state_dir: Path) -> Path:
    return state_dir / "sa.password"


def sa_password(state_dir: Path) -> str:
    """MIRRORKIT_LAB_SA_PASSWORD when set, else the one the lab generated earlier, else a new one."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = password_file(state_dir)
    value = os.environ.get(SA_PASSWORD_ENV)
    if not value:
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        alphabet = string.ascii_letters + string.digits
        value = "Lab-" + "".join(secrets.choice(alphabet) for _ in range(20)) + "!9a"
    if not path.exists() or path.read_text(encoding="utf-8").strip() != value:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        os.replace(tmp, path)
    return value


# what a rehearsal did to an instance, kept in lab.json until the next up/down/thaw
KILLED, FROZEN = "killed", "frozen"


@dataclass
class Recorded:
    name: str
    host: str
    port: int
    pid: Optional[int]
    rehearsal: Optional[str] = None


def _lab_json(state_dir: Path) -> Path:
    return state_dir / "lab.json"


def read_state(state_dir: Path) -> list[Recorded]:
    try:
        data = json.loads(_lab_json(state_dir).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return [Recorded(i["name"], i["host"], i["port"], i.get("pid"), i.get("rehearsal"))
            for i in data.get("instances", [])]


def write_state(state_dir: Path, items: list[Recorded]) -> None:
    tmp = _lab_json(state_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps({"instances": [i.__dict__ for i in items]}, indent=2), encoding="utf-8")
    os.replace(tmp, _lab_json(state_dir))


def pid_alive(pid: Optional[int], state_dir: Path) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    text = b" ".join(cmdline).decode("utf-8", "replace")
    return "mirrorkit_lab.process" in text and str(state_dir.resolve()) in text


def pid_stopped(pid: Optional[int]) -> bool:
    """True while the process is stopped by a signal (SIGSTOP: the kernel's state T)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    # the command name in parentheses may itself hold ')' and spaces
    return stat.rpartition(")")[2].split()[:1] == ["T"]


def process_state(rec: Recorded, state_dir: Path) -> str:
    """running | frozen | unreachable (alive, refusing connections) | killed | down."""
    if pid_alive(rec.pid, state_dir):
        if pid_stopped(rec.pid):
            return "frozen"
        return "running" if accepts(rec.host, rec.port) else "unreachable"
    return "killed" if rec.rehearsal == KILLED else "down"


def accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


LAB_SECRETS = ("master-key.password", "private-key-backup.password")


def provision_secrets(state_dir: Path) -> None:
    """The lab's own secrets for parameters/lab.yaml (file: references), random, mode 0600."""
    directory = state_dir / "secrets"
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    alphabet = string.ascii_letters + string.digits
    for name in LAB_SECRETS:
        path = directory / name
        if path.exists():
            continue
        value = "Lab-" + "".join(secrets.choice(alphabet) for _ in range(24)) + "!7b"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")


def up(params: Path, state_dir: Path, out=sys.stdout) -> list[InstanceSpec]:
    specs = load_instances(params)
    password = sa_password(state_dir)
    provision_secrets(state_dir)
    recorded = {r.name: r for r in read_state(state_dir)}
    started: list[tuple[InstanceSpec, subprocess.Popen, Path]] = []
    for spec in specs:
        rec = recorded.get(spec.name)
        if rec and pid_alive(rec.pid, state_dir):
            if (rec.host, rec.port) != (spec.host, spec.port):
                raise LabError(f"{spec.name}: still running at {rec.host},{rec.port} (pid {rec.pid}), not at "
                               f"{spec.server} as {params} says; run 'mirrorkit lab down' first to move it")
            if pid_stopped(rec.pid):
                print(f"{spec.name}: frozen at {spec.server} (pid {rec.pid}); left as it is "
                      f"('mirrorkit lab thaw {spec.name}' resumes it)", file=out)
            else:
                print(f"{spec.name}: already running at {spec.server} (pid {rec.pid})", file=out)
            continue
        if accepts(spec.host, spec.port):
            raise LabError(f"{spec.name}: {spec.server} is already in use by another process; "
                           f"stop it or give the instance another 'server' in {params}")
        home = instance_home(state_dir, spec.name)
        home.mkdir(parents=True, exist_ok=True)
        log = home / "process.log"
        env = dict(os.environ, **{SA_PASSWORD_ENV: password})
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mirrorkit_lab.process", "--state-dir", str(state_dir.resolve()),
                 "--instance", f"{spec.name}={spec.host},{spec.port}"],
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        recorded[spec.name] = Recorded(spec.name, spec.host, spec.port, proc.pid)
        started.append((spec, proc, log))
    write_state(state_dir, list(recorded.values()))
    deadline = time.monotonic() + START_TIMEOUT
    for spec, proc, log in started:
        while not accepts(spec.host, spec.port):
            if proc.poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
                raise LabError(f"{spec.name}: the instance process exited with code {proc.returncode} "
                               f"before accepting connections; last lines of {log}:\n  " + "\n  ".join(tail))
            if time.monotonic() > deadline:
                raise LabError(f"{spec.name}: not accepting connections at {spec.server} after "
                               f"{START_TIMEOUT:.0f} s; see {log}")
            time.sleep(0.05)
        print(f"{spec.name}: up at {spec.server} (pid {proc.pid})", file=out)
    return specs


def down(state_dir: Path, out=sys.stdout, timeout: float = 10.0) -> None:
    items = read_state(state_dir)
    live = [r for r in items if pid_alive(r.pid, state_dir)]
    for r in live:
        try:
            # resume a frozen instance first: a SIGTERM pending over SIGSTOP may go to any thread,
            # and Python acts on it only when the main thread wakes
            os.kill(r.pid, signal.SIGCONT)
            os.kill(r.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for r in live:
        while not pid_ended(r.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(r.pid, state_dir):
            os.kill(r.pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + timeout
            while not pid_ended(r.pid) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
        print(f"{r.name}: stopped", file=out)
    for r in items:
        r.pid, r.rehearsal = None, None
    if items:
        write_state(state_dir, items)
    if not live:
        print("the lab is not running", file=out)


def _find(state_dir: Path, name: str) -> Recorded:
    items = read_state(state_dir)
    if not items:
        raise LabError(f"no lab in {state_dir}; start one with 'mirrorkit lab up PARAMS'")
    for r in items:
        if r.name.lower() == name.lower():
            return r
    raise LabError(f"{name!r} is not an instance of the lab in {state_dir} "
                   f"(known: {', '.join(sorted(r.name for r in items))})")


def _record(state_dir: Path, name: str, rehearsal: Optional[str]) -> None:
    items = read_state(state_dir)
    for r in items:
        if r.name == name:
            r.rehearsal = rehearsal
    write_state(state_dir, items)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(what)
        time.sleep(0.02)


def pid_ended(pid: int) -> bool:
    """True once every thread of the process has exited, so its sockets are closed.

    A killed process's main thread can be a zombie (no cmdline: pid_alive is False) while its
    other threads still hold the listening socket.
    """
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)     # our child when lab up ran in this process
        if done == pid:
            return True
    except ChildProcessError:                      # not our child: init collects it
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        if stat.rpartition(")")[2].split()[:1] != ["Z"]:
            return False
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def _require_live(state_dir: Path, rec: Recorded, command: str) -> None:
    if not pid_alive(rec.pid, state_dir):
        how = "killed" if rec.rehearsal == KILLED else "down"
        raise LabError(f"{rec.name} is already {how}; nothing to {command} "
                       f"('mirrorkit lab up PARAMS' starts it again)")


def kill(state_dir: Path, name: str, out=sys.stdout, timeout: float = 10.0) -> None:
    """End the instance's process with SIGKILL, as a crash would: no shutdown, no clean close."""
    rec = _find(state_dir, name)
    _require_live(state_dir, rec, "kill")
    try:
        os.kill(rec.pid, signal.SIGKILL)
    except ProcessLookupError:     # it ended on its own in between: still record the rehearsal
        pass
    _record(state_dir, rec.name, KILLED)
    _wait(lambda: pid_ended(rec.pid), timeout,
          f"{rec.name}: pid {rec.pid} still there {timeout:.0f} s after SIGKILL; check it with 'ps {rec.pid}'")
    print(f"{rec.name}: killed (pid {rec.pid}, SIGKILL); 'mirrorkit lab up PARAMS' brings it back", file=out)


def freeze(state_dir: Path, name: str, out=sys.stdout, timeout: float = 10.0) -> None:
    """Stop the instance's process with SIGSTOP, a hung host: its sockets stay open, nothing answers."""
    rec = _find(state_dir, name)
    _require_live(state_dir, rec, "freeze")
    if pid_stopped(rec.pid):
        raise LabError(f"{rec.name} is already frozen; 'mirrorkit lab thaw {rec.name}' resumes it")
    os.kill(rec.pid, signal.SIGSTOP)
    _record(state_dir, rec.name, FROZEN)
    _wait(lambda: pid_stopped(rec.pid), timeout, f"{rec.name}: pid {rec.pid} not stopped {timeout:.0f} s "
          f"after SIGSTOP; check it with 'ps {rec.pid}'")
    print(f"{rec.name}: frozen (pid {rec.pid}, SIGSTOP); 'mirrorkit lab thaw {rec.name}' resumes it", file=out)


def thaw(state_dir: Path, name: str, out=sys.stdout, timeout: float = 10.0) -> None:
    """Resume a frozen instance with SIGCONT; its clients and peers see it answer again."""
    rec = _find(state_dir, name)
    _require_live(state_dir, rec, "thaw")
    if not pid_stopped(rec.pid):
        raise LabError(f"{rec.name} is not frozen; 'mirrorkit lab freeze {rec.name}' freezes it")
    os.kill(rec.pid, signal.SIGCONT)
    _record(state_dir, rec.name, None)
    _wait(lambda: not pid_stopped(rec.pid), timeout, f"{rec.name}: pid {rec.pid} still stopped {timeout:.0f} s "
          f"after SIGCONT; check it with 'ps {rec.pid}'")
    print(f"{rec.name}: thawed (pid {rec.pid}, SIGCONT)", file=out)


def copy(state_dir: Path, source: str, target: str, out=sys.stdout) -> None:
    from .fs import ServerFileError, ServerFileSystem
    names = {r.name.lower(): r.name for r in read_state(state_dir)}

    def split(arg: str) -> tuple[str, str]:
        name, sep, path = arg.partition(":")
        if not sep or not path:
            raise LabError(f"{arg!r}: write INSTANCE:PATH, e.g. PARTNER_A:C:\\certs\\a.cer")
        if name.lower() not in names:
            raise LabError(f"{name!r} is not an instance of the lab in {state_dir} "
                           f"(known: {', '.join(sorted(names.values())) or 'none'})")
        return names[name.lower()], path
    src_name, src_path = split(source)
    dst_name, dst_path = split(target)
    src_fs = ServerFileSystem(instance_home(state_dir, src_name) / "fs")
    dst_fs = ServerFileSystem(instance_home(state_dir, dst_name) / "fs")
    try:
        dst_fs.copy(src_fs, src_path, dst_path)
    except ServerFileError as exc:
        raise LabError(str(exc)) from None
    print(f"copied {src_name}:{src_path} -> {dst_name}:{dst_path}", file=out)


# -- LAB-ONLY fault injection (transport/faults.py reads what these write) ---------------------------------
def _instance_name(state_dir: Path, name: str) -> str:
    names = {r.name.lower(): r.name for r in read_state(state_dir)}
    if name.lower() not in names:
        raise LabError(f"{name!r} is not an instance of the lab in {state_dir} "
                       f"(known: {', '.join(sorted(names.values())) or 'none'})")
    return names[name.lower()]


def cut(state_dir: Path, a: str, b: str, out=sys.stdout) -> None:
    from .transport import faults
    a, b = _instance_name(state_dir, a), _instance_name(state_dir, b)
    try:
        faults.cut(state_dir, a, b)
    except faults.FaultError as exc:
        raise LabError(str(exc)) from None
    print(f"cut {a} <-> {b}: their traffic is dropped until `mirrorkit lab heal {a} {b}`", file=out)


def heal(state_dir: Path, a: Optional[str] = None, b: Optional[str] = None, out=sys.stdout) -> None:
    from .transport import faults
    if (a is None) != (b is None):
        raise LabError("heal takes two instance names, or none to heal every cut")
    if a is not None:
        a, b = _instance_name(state_dir, a), _instance_name(state_dir, b)
    n = faults.heal(state_dir, a, b)
    what = f"{a} <-> {b}" if a is not None else "all cuts"
    print(f"healed {what} ({n} removed)", file=out)


def clock(state_dir: Path, name: str, offset: str, out=sys.stdout) -> None:
    from .transport import faults
    name = _instance_name(state_dir, name)
    try:
        seconds = faults.parse_offset(offset)
    except faults.FaultError as exc:
        raise LabError(str(exc)) from None
    faults.set_clock(state_dir, name, seconds)
    print(f"{name}: certificate checks see UTC {'as it is' if not seconds else f'shifted by {offset}'}", file=out)


__all__ = ["LabError", "LabConfigError", "up", "down", "kill", "freeze", "thaw", "copy", "cut", "heal", "clock",
           "sa_password", "state_dir_from", "process_state"]
