"""Run lab instances: one process per instance (lab up) or several in one (lab serve).

The sa password arrives in the environment (MIRRORKIT_LAB_SA_PASSWORD), never on
the command line.
"""
from __future__ import annotations

import argparse
import os
import signal
import ssl
import threading
from pathlib import Path

from .crypto import generate_tls_identity
from .engine.instance import LabInstance


def instance_home(state_dir: Path, name: str) -> Path:
    # names may hold characters a file system dislikes; keep them readable but safe
    safe = "".join(c if c.isalnum() or c in "-_." else f"%{ord(c):04x}" for c in name)
    return Path(state_dir) / "instances" / safe


def tls_context(home: Path, name: str) -> ssl.SSLContext:
    cert, key = home / "tls-cert.pem", home / "tls-key.pem"
    if not (cert.exists() and key.exists()):
        pem_cert, pem_key = generate_tls_identity(name)
        tmp_key = key.with_suffix(".tmp")
        fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem_key)
        cert.with_suffix(".tmp").write_bytes(pem_cert)
        os.replace(tmp_key, key)
        os.replace(cert.with_suffix(".tmp"), cert)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2   # TLS inside PRELOGIN packets (tds-server §2.3)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class RunningInstance:
    """An instance with its TDS listener and mirroring transport."""

    def __init__(self, state_dir: Path, name: str, host: str, port: int, sa_password: str):
        from .tds.server import TdsServer
        home = instance_home(state_dir, name)
        home.mkdir(parents=True, exist_ok=True)
        self.instance = LabInstance(name, home, host, port)
        self.instance.start(sa_password)
        # clients reach the instance at its address: that is the name its TLS certificate carries
        self.server = TdsServer(self.instance, host, port, ssl_context=tls_context(home, host))
        self.transport = None

    def start(self) -> None:
        from .transport import MirroringTransport
        self.server.start()
        from .mirroring import MirroringLayer
        self.transport = MirroringTransport(self.instance)
        self.instance.attach_transport(self.transport)
        self.instance.mirroring = MirroringLayer(self.instance, self.transport)

    def stop(self) -> None:
        self.server.shutdown()
        self.instance.stop()


def serve(state_dir: Path, specs: list[tuple[str, str, int]], sa_password: str,
          ready: threading.Event | None = None) -> None:
    """Serve instances in this process until SIGTERM/SIGINT."""
    running = [RunningInstance(state_dir, n, h, p, sa_password) for n, h, p in specs]
    for r in running:
        r.start()
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if ready is not None:
        ready.set()
    try:
        # wake now and then: a signal the kernel handed to another thread (one that was running when
        # a frozen process got SIGCONT, say) only runs its Python handler when the main thread runs
        while not stop.wait(0.5):
            pass
    finally:
        for r in running:
            r.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mirrorkit_lab.process")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--instance", action="append", required=True,
                        help="NAME=HOST,PORT (repeatable)")
    args = parser.parse_args(argv)
    password = os.environ.pop("MIRRORKIT_LAB_SA_PASSWORD", None)
    if not password:
        parser.error("MIRRORKIT_LAB_SA_PASSWORD must be set in the environment")
    specs = []
    for item in args.instance:
        name, _, server = item.rpartition("=")
        host, _, port = server.partition(",")
        specs.append((name, host, int(port)))
    serve(args.state_dir, specs, password)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
