#!/usr/bin/env python3
"""How long verify takes on availability-group meshes of 2..9 replicas (and how long configuring them takes).

For each size n it starts n lab instances, each in its own process as `mirrorkit lab up` runs them (or, with
`--server inprocess`, as threads of this process), on fresh loopback addresses (port 1433, endpoint 5022),
configures the mesh with the runbook driven in process (outbound on every replica, then inbound on every
replica: n·(n-1) certificates imported), and times verify:

  cold   mirrorkit.verify.collect + evaluate with new connections (what `mirrorkit verify` and the
         notebook do once per run: n logins, then the catalog queries)
  warm   collect + evaluate on connections already open
  eval   evaluate alone (the n·(n-1) pair checks; no I/O except one TCP connect per endpoint)
  cli    `python -m mirrorkit verify params.yaml` end to end, process start included

Each verify figure is the median of --repeat runs. Every verdict must PASS with all n·(n-1) pairs OK.

  .venv/bin/python bench/verify_scaling.py [--min 2] [--max 9] [--repeat 5] [--server subprocess|inprocess]
                                           [--json out.json]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirrorkit_lab.supervisor import accepts  # noqa: E402

PASSWORD = "Bench-Verify-Passw0rd!" + str(random.randint(1000, 9999))
DMK = "Bench-Verify-Master-Key-Passw0rd!"
ENV_SA, ENV_DMK = "MK_VT_SA", "MK_VT_DMK"


def free_loopbacks(n: int, taken: set) -> list[str]:
    out = []
    while len(out) < n:
        host = f"127.{random.randint(200, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
        if host not in taken and not accepts(host, 1433) and not accepts(host, 5022):
            taken.add(host)
            out.append(host)
    return out


class Lab:
    """n instances: one process each (as `mirrorkit lab up`), or threads of this process."""

    def __init__(self, mode: str, state_dir: Path, names: list[str], hosts: list[str]):
        self.mode, self.procs, self.running = mode, [], []
        self.hosts = dict(zip(names, hosts))
        env = dict(os.environ, MIRRORKIT_LAB_SA_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
        for name, host in self.hosts.items():
            if mode == "subprocess":
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "mirrorkit_lab.process", "--state-dir", str(state_dir),
                     "--instance", f"{name}={host},1433"], env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, cwd=ROOT))
            else:
                from mirrorkit_lab.process import RunningInstance
                r = RunningInstance(state_dir, name, host, 1433, PASSWORD)
                r.start()
                self.running.append(r)
        deadline = time.monotonic() + 60
        for host in hosts:
            while not accepts(host, 1433):
                for p in self.procs:
                    if p.poll() is not None:
                        raise SystemExit("lab instance exited: " + p.stderr.read().decode(errors="replace"))
                if time.monotonic() > deadline:
                    raise SystemExit("lab instances did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for r in self.running:
            r.stop()


def parameter_values(hosts: dict[str, str]) -> dict:
    return {
        "environment": "bench", "topology": "availability_group",
        "instances": [{"name": n, "server": f"{h},1433", "role": "replica"} for n, h in hosts.items()],
        "endpoint": {"name": "Mirroring", "port": 5022}, "certificate": {}, "logins": {},
        "connection": {"driver": "FreeTDS", "authentication": "sql", "user": "sa", "password": f"env:{ENV_SA}",
                       "encrypt": "optional", "tds_version": "7.4"},
        "secrets": {"master_key_password": f"env:{ENV_DMK}"}, "verify": {},
    }


def median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 1)


def one_size(n: int, args, taken: set, workdir: Path) -> dict:
    from mirrorkit.config import parameters as params
    from mirrorkit.core import verify
    from mirrorkit.notebook.session import Session
    from tests.kit.verify_helpers import run_step, write_parameter_file
    names = [f"REPLICA_{i}" for i in range(1, n + 1)]
    state = workdir / f"n{n}"
    t0 = time.perf_counter()
    lab = Lab(args.server, state / "lab", names, free_loopbacks(n, taken))
    started = time.perf_counter() - t0
    try:
        values = parameter_values(lab.hosts)
        env = params.from_values(values)
        certs = state / "certificates"
        t0 = time.perf_counter()
        for name in names:
            run_step(env, "outbound", name, certs)
        t_out = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name in names:
            run_step(env, "inbound", name, certs)
        t_in = time.perf_counter() - t0

        def check(verdict):
            bad = [f for f in verdict.findings if f.status != "PASS"]
            cells = [r for r in verdict.matrix.values()]
            if bad or len(cells) != n * (n - 1) or any(r != "OK" for r in cells):
                raise SystemExit(f"n={n}: verify does not pass: {[(f.check, f.instance, f.peer, f.found) for f in bad]}")

        cold, warm, evals = [], [], []
        for _ in range(args.repeat):
            run = Session(env)
            t0 = time.perf_counter()
            verdict = verify.evaluate(env, verify.collect(env, run.connection))
            cold.append(time.perf_counter() - t0)
            check(verdict)
            for _ in range(1):
                t0 = time.perf_counter()
                snaps = verify.collect(env, run.connection)
                t1 = time.perf_counter()
                verdict = verify.evaluate(env, snaps)
                t2 = time.perf_counter()
                warm.append(t2 - t0)
                evals.append(t2 - t1)
                check(verdict)
            run.close()
        params_file = write_parameter_file(state / "params.yaml", values)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mirrorkit", "verify", str(params_file)], cwd=ROOT,
                              env=dict(os.environ), capture_output=True, text=True, timeout=300)
        cli = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"n={n}: mirrorkit verify exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    finally:
        lab.stop()
    return {"replicas": n, "pairs": n * (n - 1), "start_s": round(started, 2),
            "configure_outbound_s": round(t_out, 2), "configure_inbound_s": round(t_in, 2),
            "configure_s": round(t_out + t_in, 2), "verify_cold_ms": median_ms(cold),
            "verify_warm_ms": median_ms(warm), "evaluate_ms": median_ms(evals), "cli_s": round(cli, 2),
            "cold_runs_ms": [round(x * 1000, 1) for x in cold]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min", type=int, default=2)
    ap.add_argument("--max", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--server", choices=["subprocess", "inprocess"], default="subprocess")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ[ENV_SA] = PASSWORD
    os.environ[ENV_DMK] = DMK
    import pyodbc
    results = []
    taken: set = set()
    with tempfile.TemporaryDirectory(prefix="verify-scaling-") as tmp:
        print(f"{'replicas':>8} {'pairs':>5} {'configure s':>11} {'(out/in)':>11} {'verify cold ms':>14} "
              f"{'warm ms':>8} {'eval ms':>8} {'cli s':>6}", flush=True)
        for n in range(args.min, args.max + 1):
            r = one_size(n, args, taken, Path(tmp))
            results.append(r)
            print(f"{r['replicas']:>8} {r['pairs']:>5} {r['configure_s']:>11.2f} "
                  f"{r['configure_outbound_s']:>5.2f}/{r['configure_inbound_s']:<5.2f} {r['verify_cold_ms']:>14.1f} "
                  f"{r['verify_warm_ms']:>8.1f} {r['evaluate_ms']:>8.1f} {r['cli_s']:>6.2f}", flush=True)
    meta = {"python": platform.python_version(), "pyodbc": pyodbc.version, "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "server": args.server, "repeat": args.repeat,
            "platform": platform.platform()}
    print(json.dumps(meta))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
