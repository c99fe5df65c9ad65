#!/usr/bin/env python3
"""Round trips per second against one lab instance, through pyodbc + FreeTDS.

Starts one lab instance on a free loopback address (by default in its own process, as
`mirrorkit lab up` would run it; `--server inprocess` runs it in this process), opens one
connection and, for each query, runs `cursor.execute(...)` + `fetchall()` in a loop for a fixed
time after a warm-up:

  catalog        SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = 4
  parameterised  SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = ?   (sp_prepexec)
  select1        SELECT 1

It prints queries per second, latency percentiles and, for a separate server process, the server
CPU time per query (queries per server-CPU-second = what one core sustains). `--json out.json`
writes the figures. Usage:

  .venv/bin/python bench/roundtrips.py [--duration 5] [--warmup 1] [--json out.json]
                                      [--server subprocess|inprocess] [--server-cpu N --client-cpu M]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
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
sys.path.insert(0, str(ROOT))

from mirrorkit_lab.supervisor import accepts  # noqa: E402

PASSWORD = "Bench-Passw0rd!" + str(random.randint(1000, 9999))
QUERIES = {
    "catalog": ("SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = 4", ()),
    "parameterised": ("SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = ?", (4,)),
    "select1": ("SELECT 1", ()),
}
EXPECTED = {"catalog": [("TSQL Default TCP", "STARTED")], "parameterised": [("TSQL Default TCP", "STARTED")],
            "select1": [(1,)]}


def free_loopback(port: int) -> str:
    for _ in range(200):
        host = f"127.{random.randint(200, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
        if not accepts(host, port):
            return host
    raise SystemExit("no free loopback address found")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, mode: str, state_dir: Path, host: str, port: int, cpu: int | None):
        self.mode, self.host, self.port = mode, host, port
        self.proc = None
        self.running = None
        if mode == "subprocess":
            env = dict(os.environ, MIRRORKIT_LAB_SA_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
            cmd = [sys.executable, "-m", "mirrorkit_lab.process", "--state-dir", str(state_dir),
                   "--instance", f"BENCH={host},{port}"]
            if cpu is not None:
                cmd = ["taskset", "-c", str(cpu)] + cmd
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         cwd=ROOT)
            deadline = time.monotonic() + 30
            while not accepts(host, port):
                if self.proc.poll() is not None:
                    raise SystemExit("lab instance exited: " + self.proc.stderr.read().decode(errors="replace"))
                if time.monotonic() > deadline:
                    raise SystemExit("lab instance did not start")
                time.sleep(0.05)
        else:
            from mirrorkit_lab.process import RunningInstance
            self.running = RunningInstance(state_dir, "BENCH", host, port, PASSWORD)
            self.running.start()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else os.getpid()

    def stop(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            self.running.stop()


def measure(cur, sql: str, params: tuple, expected, duration: float, warmup: float,
            server_pid: int | None) -> dict:
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        cur.execute(sql, *params).fetchall()
    rows = [tuple(r) for r in cur.execute(sql, *params).fetchall()]
    if rows != expected:
        raise SystemExit(f"unexpected answer to {sql!r}: {rows!r}")
    lat: list[float] = []
    s0 = cpu_seconds(server_pid) if server_pid else None
    c0 = time.process_time()
    t0 = time.perf_counter()
    end = t0 + duration
    now = t0
    while now < end:
        cur.execute(sql, *params).fetchall()
        t = time.perf_counter()
        lat.append(t - now)
        now = t
    elapsed = now - t0
    client_cpu = time.process_time() - c0
    server_cpu = cpu_seconds(server_pid) - s0 if server_pid else None
    lat.sort()
    out = {"queries": len(lat), "seconds": round(elapsed, 3), "per_second": round(len(lat) / elapsed, 1),
           "p50_ms": round(lat[len(lat) // 2] * 1000, 3), "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 3),
           "mean_ms": round(statistics.fmean(lat) * 1000, 3), "client_cpu_s": round(client_cpu, 3)}
    if server_cpu is not None:
        out["server_cpu_s"] = round(server_cpu, 3)
        out["per_server_cpu_second"] = round(len(lat) / server_cpu, 1) if server_cpu > 0 else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds measured per query (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per query (default 1)")
    ap.add_argument("--server", choices=["subprocess", "inprocess"], default="subprocess")
    ap.add_argument("--server-cpu", type=int, help="pin the server process to this CPU (subprocess only)")
    ap.add_argument("--client-cpu", type=int, help="pin this (client) process to this CPU")
    ap.add_argument("--port", type=int, default=1433)
    ap.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = ap.parse_args(argv)

    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    host = free_loopback(args.port)
    with tempfile.TemporaryDirectory(prefix="mirrorkit-bench-") as tmp:
        server = Server(args.server, Path(tmp), host, args.port,
                        args.server_cpu if args.server == "subprocess" else None)
        try:
            cn = pyodbc.connect(f"DRIVER={{FreeTDS}};SERVER={host};PORT={args.port};UID=sa;PWD={{{PASSWORD}}};"
                                f"DATABASE=master;TDS_Version=7.4;", autocommit=True, timeout=10)
            cur = cn.cursor()
            results = {}
            for name, (sql, params) in QUERIES.items():
                results[name] = measure(cur, sql, params, EXPECTED[name], args.duration, args.warmup,
                                        server.pid if args.server == "subprocess" else None)
            cn.close()
        finally:
            server.stop()

    info = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "affinity_client": sorted(os.sched_getaffinity(0))},
        "server": args.server, "server_cpu": args.server_cpu, "client_cpu": args.client_cpu,
        "duration_s": args.duration, "warmup_s": args.warmup, "results": results,
    }
    print(f"lab round trips: pyodbc + FreeTDS, one connection, {args.duration:g} s per query "
          f"after {args.warmup:g} s warm-up; server {args.server}"
          + (f" on CPU {args.server_cpu}" if args.server_cpu is not None else "")
          + (f", client on CPU {args.client_cpu}" if args.client_cpu is not None else "")
          + f"; {os.cpu_count()} CPUs")
    head = f"{'query':<14}{'queries':>9}{'per s':>10}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU s':>11}{'per srv-CPU-s':>15}"
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        srv = f"{r['server_cpu_s']:.2f}" if r.get("server_cpu_s") is not None else "-"
        per_cpu = f"{r['per_server_cpu_second']:.0f}" if r.get("per_server_cpu_second") else "-"
        print(f"{name:<14}{r['queries']:>9}{r['per_second']:>10.0f}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}"
              f"{srv:>11}{per_cpu:>15}")
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
