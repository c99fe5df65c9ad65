#!/usr/bin/env python3
"""Synchronous requests per second through one transport link (transport/links.py) on loopback.

Starts two lab instances, A in this process and B in its own process (as `mirrorkit lab up` runs it;
`--peer inprocess` runs B here too, sharing the GIL), sets up certificate trust both ways per the
documented procedure through pyodbc, opens `A.transport.link(B, "PARTNER")` and for a fixed time
after a warm-up runs `link.request(message, 5)` in a loop, one request at a time:

  ping      {"kind": "ping"}                       (B's built-in handler replies {"kind": "pong", ...})
  ping-1k   {"kind": "ping", "block": <1 KiB bytes>}  (the size of a small log block)

It prints requests per second and latency percentiles. What SAFETY FULL needs: one request per
committed transaction, so at least 1,000/s. Usage:

  .venv/bin/python bench/links.py [--duration 5] [--warmup 1] [--peer subprocess|inprocess]
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyodbc

ROOT = Path(__file__).resolve().parents[1]

from mirrorkit_lab.process import RunningInstance, instance_home  # noqa: E402
from mirrorkit_lab.supervisor import accepts  # noqa: E402

PASSWORD = "Bench-Passw0rd!"
DBM_PORT = 5022


def free_loopback() -> str:
    for _ in range(200):
        host = f"127.{random.randint(200, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
        if not accepts(host, 1433) and not accepts(host, DBM_PORT):
            return host
    raise SystemExit("no free loopback address found")


def sql(host: str, statement: str) -> None:
    cs = (f"DRIVER={{FreeTDS}};SERVER={host};PORT=1433;UID=sa;PWD={{{PASSWORD}}};DATABASE=master;"
          "TDS_Version=7.4;")
    with pyodbc.connect(cs, autocommit=True, timeout=10) as cn:
        cn.cursor().execute(statement)


def outbound(name: str, host: str) -> None:
    sql(host, f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<{name}_Strong_Password#1>'")
    sql(host, f"CREATE CERTIFICATE {name}_cert WITH SUBJECT = '{name} certificate for database mirroring'")
    sql(host, f"CREATE ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = {DBM_PORT}, "
              f"LISTENER_IP = ALL) FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {name}_cert, "
              "ENCRYPTION = REQUIRED ALGORITHM AES, ROLE = ALL)")
    sql(host, f"BACKUP CERTIFICATE {name}_cert TO FILE = 'C:\\{name}_cert.cer'")


def inbound(state: Path, receiver: tuple[str, str], peer: tuple[str, str]) -> None:
    from mirrorkit_lab.fs import ServerFileSystem
    (rname, rhost), (pname, _) = receiver, peer
    path = f"C:\\{pname}_cert.cer"
    ServerFileSystem(instance_home(state, rname) / "fs").copy(
        ServerFileSystem(instance_home(state, pname) / "fs"), path, path)
    sql(rhost, f"CREATE LOGIN {pname}_login WITH PASSWORD = 'AStrongPassword!@#'")
    sql(rhost, f"CREATE USER {pname}_user FOR LOGIN {pname}_login")
    sql(rhost, f"CREATE CERTIFICATE {pname}_cert AUTHORIZATION {pname}_user FROM FILE = '{path}'")
    sql(rhost, f"GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO {pname}_login")


def measure(link, message: dict, duration: float, warmup: float) -> dict:
    end = time.monotonic() + warmup
    while time.monotonic() < end:
        assert link.request(message, 5) is not None
    latencies = []
    started = time.perf_counter()
    end = started + duration
    while True:
        t = time.perf_counter()
        if t >= end:
            break
        reply = link.request(message, 5)
        latencies.append(time.perf_counter() - t)
        assert reply is not None and reply["kind"] == "pong", reply
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests_per_s": len(latencies) / elapsed, "p50_us": latencies[len(latencies) // 2] * 1e6,
            "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6, "mean_us": statistics.mean(latencies) * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--peer", choices=["subprocess", "inprocess"], default="subprocess")
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="mirrorkit-bench-links-"))
    host_a, host_b = free_loopback(), free_loopback()
    a = RunningInstance(state, "BENCH_A", host_a, 1433, PASSWORD)
    a.start()
    proc = b = None
    try:
        if args.peer == "subprocess":
            env = dict(os.environ, MIRRORKIT_LAB_SA_PASSWORD=PASSWORD)
            proc = subprocess.Popen([sys.executable, "-m", "mirrorkit_lab.process", "--state-dir", str(state),
                                     "--instance", f"BENCH_B={host_b},1433"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
            deadline = time.monotonic() + 30
            while not accepts(host_b, 1433):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("BENCH_B did not start: " + (proc.stderr.read().decode(errors="replace")
                                                                  if proc.poll() is not None else "timeout"))
                time.sleep(0.05)
        else:
            b = RunningInstance(state, "BENCH_B", host_b, 1433, PASSWORD)
            b.start()
        outbound("BENCH_A", host_a)
        outbound("BENCH_B", host_b)
        inbound(state, ("BENCH_A", host_a), ("BENCH_B", host_b))
        inbound(state, ("BENCH_B", host_b), ("BENCH_A", host_a))
        link = a.transport.link(f"TCP://{host_b}:{DBM_PORT}", "PARTNER")
        if not link.wait_up(15):
            raise SystemExit(f"the link did not come up: {link.last_outcome}")
        print(f"link BENCH_A -> BENCH_B ({args.peer}), {args.duration:.0f} s per message, one request at a time")
        for label, message in (("ping", {"kind": "ping"}), ("ping-1k", {"kind": "ping", "block": os.urandom(1024)})):
            r = measure(link, message, args.duration, args.warmup)
            print(f"  {label:<8} {r['requests_per_s']:8.0f} requests/s   p50 {r['p50_us']:6.0f} us   "
                  f"p99 {r['p99_us']:6.0f} us   mean {r['mean_us']:6.0f} us")
        link.close()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if b is not None:
            b.stop()
        a.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
