"""`mirrorkit lab up|down|status|cp|cut|heal|clock`: start and stop instance processes, report on them,
rehearse faults.

State directory (default .mirrorkit-lab/): lab.json (instances and pids),
sa.password (0600), faults.json (lab cut/clock, read by every instance), instances/<name>/ (store,
server file system, logs).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
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


@dataclass
class Recorded:
    name: str
    host: str
    port: int
    pid: Optional[int]


def _lab_json(state_dir: Path) -> Path:
    return state_dir / "lab.json"


def read_state(state_dir: Path) -> list[Recorded]:
    try:
        data = json.loads(_lab_json(state_dir).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return [Recorded(i["name"], i["host"], i["port"], i.get("pid")) for i in data.get("instances", [])]


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
        if rec and pid_alive(rec.pid, state_dir) and (rec.host, rec.port) == (spec.host, spec.port):
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
            os.kill(r.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for r in live:
        while pid_alive(r.pid, state_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(r.pid, state_dir):
            os.kill(r.pid, signal.SIGKILL)
        try:
            os.waitpid(r.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        print(f"{r.name}: stopped", file=out)
    for r in items:
        r.pid = None
    if items:
        write_state(state_dir, items)
    if not live:
        print("the lab is not running", file=out)


def endpoint_summary(state_dir: Path, name: str) -> str:
    db = instance_home(state_dir, name) / "instance.db"
    if not db.exists():
        return "-"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            row = conn.execute("SELECT name, state, port, ip_address FROM t_endpoints WHERE type=4").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return "?"
    if row is None:
        return "no mirroring endpoint"
    state = {0: "STARTED", 1: "STOPPED", 2: "DISABLED"}.get(row[1], "?")
    return f"{row[0]} {state} port {row[2]}" + (f" ip {row[3]}" if row[3] else "")


def status(state_dir: Path, out=sys.stdout) -> int:
    items = read_state(state_dir)
    if not items:
        print(f"no lab in {state_dir} (start one with: mirrorkit lab up parameters/lab.yaml)", file=out)
        return 3
    rows = [("INSTANCE", "SERVER", "STATE", "PID", "MIRRORING ENDPOINT")]
    all_up = True
    for r in items:
        alive = pid_alive(r.pid, state_dir) and accepts(r.host, r.port)
        all_up &= alive
        rows.append((r.name, f"{r.host},{r.port}", "running" if alive else "stopped",
                     str(r.pid) if alive else "-", endpoint_summary(state_dir, r.name)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip(), file=out)
    return 0 if all_up else 3


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


__all__ = ["LabError", "LabConfigError", "up", "down", "status", "copy", "cut", "heal", "clock", "sa_password",
           "state_dir_from"]
