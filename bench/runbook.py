#!/usr/bin/env python3
"""How long `mirrorkit run --mode apply` takes, against the floor of papermill itself.

runbook   the full mirroring runbook (outbound x3, inbound x2, witness, verify = 7 notebooks) with
          mirrorkit.runner.run(mode="apply") on a fresh lab of two partners and a witness, with
          jobs=1, 2 and 3; every repeat on a new lab. The runner starts the next kernels ahead and
          shuts used ones down in the background.
floor     the same number of trivial notebooks (one cell `x = 1`, kernel python3) run with
          papermill.execute_notebook: sequentially, and in a thread pool of `jobs` threads with the
          runbook's stage shape (3, 2, 1, 1 notebooks per stage, as the runner runs them) and flat
          (all 7 in one pool).
where     where the fastest sequential run's time goes: per step, papermill start → first cell,
          the cells (papermill's cell timings, the three slowest named), last cell → papermill end;
          the runner's own work after the steps (artifacts, manifest, seal scan) and what exporting
          the HTML records costs; papermill notebooks with one import (pandas, mirrorkit.notebook.runbook), the
          outbound notebook's cells with `pass` for code, and one save of an executed record.
ag        availability-group meshes of 2..9 replicas (outbound and inbound on every replica + verify =
          2N+1 notebooks), jobs 1 and 2, each on a fresh lab.

A "stall" is a kernel shutdown in the floor that took more than 2 s (papermill: last cell end →
end_time); with ipykernel 7.4 / jupyter_client about one shutdown in seven takes ~3.5 s instead of
~0.15 s, so every figure is given as median and best (min) of its repeats, and the floor's with the
stalls it contains. The runner's shutdowns happen off its critical path.

Lab instances run as separate processes (mirrorkit_lab.supervisor.up, as `mirrorkit lab up` starts
them) on fresh loopback addresses 127.66.x.y with a temporary state directory. Usage:

  .venv/bin/python bench/runbook.py [--repeat 5] [--replicas 2-9] [--ag-jobs 1,2] [--ag-repeat 1]
                                   [--skip-runbook] [--skip-ag] [--json out.json]
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirrorkit.execution import runner  # noqa: E402
from mirrorkit_lab import supervisor  # noqa: E402

STAGES = (3, 2, 1, 1)                   # outbound x3 | inbound x2 | witness | verify
STALL_S = 2.0
_octet = os.getpid() % 200 + 20
_host = 1


def quiet_logs() -> None:
    for name in ("papermill", "traitlets", "nbclient"):
        logging.getLogger(name).setLevel(logging.ERROR)


def loopback() -> str:
    """A fresh 127.66.x.y address that nothing listens on."""
    global _octet, _host
    for _ in range(1000):
        _host += 1
        if _host > 250:
            _host, _octet = 2, (_octet + 1) % 250
        host = f"127.66.{_octet}.{_host}"
        if not supervisor.accepts(host, 1433, 0.05):
            return host
    raise SystemExit("no free loopback address")


CPU_SECONDS: list[float] = []


def cpu_now() -> float:
    """user + system CPU seconds of this process and its reaped children (the notebook kernels)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def phases(nb) -> dict:
    """Kernel start, cells and kernel shutdown of one executed notebook, from papermill's timings."""
    pm = nb.metadata.get("papermill", {})
    cells = [c.metadata.get("papermill", {}) for c in nb.cells if c.cell_type == "code"]
    starts = [_ts(c["start_time"]) for c in cells if c.get("start_time")]
    ends = [_ts(c["end_time"]) for c in cells if c.get("end_time")]
    if not (pm.get("start_time") and pm.get("end_time") and starts and ends):
        return {}
    return {"kernel_start_s": (min(starts) - _ts(pm["start_time"])).total_seconds(),
            "cells_s": (max(ends) - min(starts)).total_seconds(),
            "kernel_shutdown_s": (_ts(pm["end_time"]) - max(ends)).total_seconds()}


class Lab:
    """N lab instance processes with a temporary state directory, and a parameter file for them."""

    def __init__(self, base: Path, roles: dict[str, str], topology: str):
        self.dir = Path(tempfile.mkdtemp(prefix="lab-", dir=base))
        self.state = self.dir / "state"
        self.state.mkdir()
        instances = [{"name": n, "server": f"{loopback()},1433", "role": r} for n, r in roles.items()]
        values = {
            "environment": "bench", "topology": topology, "instances": instances,
            "endpoint": {"name": "Mirroring", "port": 5022}, "certificate": {}, "logins": {},
            "connection": {"driver": "FreeTDS", "authentication": "sql", "user": "sa",
                           "password": f"file:{self.state / 'sa.password'}", "encrypt": "optional",
                           "tds_version": "7.4"},
            "secrets": {"master_key_password": f"file:{self.state / 'secrets' / 'master-key.password'}"},
            "verify": {},
        }
        self.params = self.dir / "params.yaml"
        self.params.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")

    def __enter__(self) -> "Lab":
        supervisor.up(self.params, self.state, out=io.StringIO())
        return self

    def __exit__(self, *exc) -> None:
        supervisor.down(self.state, out=io.StringIO())
        shutil.rmtree(self.dir, ignore_errors=True)

    def apply(self, jobs: int) -> tuple[float, object]:
        """Wall time and outcome of one apply run; the CPU time of this process and of the kernels it
        ran (they are waited for before run() returns) goes to CPU_SECONDS."""
        c0 = cpu_now()
        t0 = time.perf_counter()
        outcome = runner.run(self.params, mode="apply", jobs=jobs, out=self.dir / "runs",
                             certificate_dir=self.dir / "certs", log=lambda s: None)
        wall = time.perf_counter() - t0
        CPU_SECONDS.append(cpu_now() - c0)
        if outcome.exit_code != 0:
            raise SystemExit(f"the runbook failed ({outcome.status}): {outcome.run_dir}\n{outcome.message}")
        return wall, outcome


# -- the floor ------------------------------------------------------------------------------------------

def trivial_notebook(path: Path, source: str = "x = 1") -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3 (ipykernel)"}}
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, str(path))
    return path


def papermill_one(src: Path, out: Path) -> bool:
    """Run one notebook as the runner does; True when its kernel shutdown stalled."""
    import papermill as pm
    nb = pm.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, log_output=False,
                             start_timeout=120)
    return phases(nb).get("kernel_shutdown_s", 0) > STALL_S


def floor(src: Path, work: Path, stages: tuple[int, ...], jobs: int) -> tuple[float, int]:
    """Wall time of sum(stages) trivial notebooks, stage by stage, each stage in a pool of `jobs`;
    and the stalled shutdowns among them."""
    counter = iter(range(10_000))
    stalls = 0
    t0 = time.perf_counter()
    for size in stages:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, size))) as pool:
            stalls += sum(pool.map(lambda _: papermill_one(src, work / f"o{next(counter)}.ipynb"), range(size)))
    return time.perf_counter() - t0, stalls


# -- where the time goes ------------------------------------------------------------------------------

def breakdown(run_dir: Path) -> dict:
    """Per step: wall time (manifest), kernel start, cells (three slowest named), kernel shutdown."""
    import nbformat
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    steps = []
    for s in manifest["steps"]:
        nb = nbformat.read(str(run_dir / s["notebook_file"]), as_version=4)
        cells = []
        for c in nb.cells:
            if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []) \
                    and "injected-parameters" not in c.metadata.get("tags", []):
                cells.append((c.source.strip().splitlines()[-1][:34], c.metadata.get("papermill", {}).get("duration") or 0.0))
        ph = phases(nb)
        steps.append({"step": f"{s['index']:02d} {s['notebook']} {s['target'] or ''}".strip(), "wall_s": s["duration_s"],
                      **{k: round(v, 3) for k, v in ph.items()},
                      "slowest_cells": [(label, round(d, 3)) for label, d in sorted(cells, key=lambda x: -x[1])[:3]]})
    html = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in manifest["steps"]:
            copy = Path(tmp) / s["notebook_file"]
            shutil.copy(run_dir / s["notebook_file"], copy)
            copy.chmod(0o644)
            t0 = time.perf_counter()
            runner.export_html(copy)
            html.append(time.perf_counter() - t0)
    return {"steps": steps, "html_export_s": [round(x, 3) for x in html]}


def skeleton(work: Path) -> Path:
    """outbound.ipynb with every code cell replaced by `pass`: papermill's per-cell cost without the work."""
    import nbformat
    nb = nbformat.read(str(runner.NOTEBOOK_DIR / "outbound.ipynb"), as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = "pass"
    path = work / "k-skeleton.ipynb"
    nbformat.write(nb, str(path))
    return path


def kernel_side(work: Path, repeat: int, executed: Path | None) -> dict:
    """papermill notebooks with one import, the outbound notebook's cells without work, and one save of
    an executed record (papermill saves the output notebook before and after every cell). Medians of
    runs without a stalled shutdown."""
    import nbformat
    variants = {"x = 1": trivial_notebook(work / "k-trivial.ipynb"),
                "import pandas": trivial_notebook(work / "k-pandas.ipynb", "import pandas"),
                "import mirrorkit.notebook.runbook": trivial_notebook(work / "k-runbook.ipynb", "import mirrorkit.notebook.runbook"),
                "import mirrorkit.notebook.runbook, pandas, ipywidgets":
                    trivial_notebook(work / "k-all.ipynb", "import mirrorkit.notebook.runbook, pandas, ipywidgets"),
                "outbound's cells, code = pass": skeleton(work)}
    out: dict = {"notebook_s": {}}
    for label, src in variants.items():
        times = []
        for i in range(repeat):
            t0 = time.perf_counter()
            stalled = papermill_one(src, work / f"k-out-{i}.ipynb")
            if not stalled:
                times.append(time.perf_counter() - t0)
        out["notebook_s"][label] = round(median(times), 3)
    if executed is not None:
        nb = nbformat.read(str(executed), as_version=4)
        t0 = time.perf_counter()
        for _ in range(20):
            nbformat.write(nb, str(work / "k-save.ipynb"))
        out["one_save_of_an_executed_outbound_s"] = round((time.perf_counter() - t0) / 20, 4)
        out["cells_in_outbound"] = len(nb.cells)
    return out


# -- main ---------------------------------------------------------------------------------------------

def parse_range(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def stat(xs: list[float]) -> dict:
    return {"median_s": round(median(xs), 2), "min_s": round(min(xs), 2), "runs_s": [round(x, 2) for x in xs]}


def run_runbook(base: Path, work: Path, src: Path, repeat: int) -> dict:
    roles = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}
    n = sum(STAGES)
    floors: dict[str, list[float]] = {"1": [], "staged_2": [], "staged_3": [], "flat_2": [], "flat_3": []}
    floor_stalls = {k: 0 for k in floors}
    configs = (1, 2, 3)
    runs: dict[int, list[float]] = {c: [] for c in configs}
    cpu: dict[int, list[float]] = {c: [] for c in configs}
    where, executed = None, None
    for r in range(repeat):
        for key, stages, jobs in (("1", (n,), 1), ("staged_2", STAGES, 2), ("staged_3", STAGES, 3),
                                  ("flat_2", (n,), 2), ("flat_3", (n,), 3)):
            wall, k = floor(src, work, stages, jobs)
            floors[key].append(wall)
            floor_stalls[key] += k
        for jobs in configs:
            with Lab(base, roles, "mirroring") as lab:
                wall, outcome = lab.apply(jobs)
                runs[jobs].append(wall)
                cpu[jobs].append(CPU_SECONDS[-1])
                if jobs == 1 and (where is None or wall < where["run_wall_s"]):
                    where = breakdown(outcome.run_dir)       # the fastest sequential run
                    where["run_wall_s"] = round(wall, 3)
                    where["after_steps_s"] = round(wall - sum(s["wall_s"] for s in where["steps"]), 3)
                    executed = work / "executed-outbound.ipynb"
                    if executed.exists():
                        executed.unlink()
                    shutil.copy(outcome.run_dir / "01-outbound-PARTNER_A.ipynb", executed)
                    executed.chmod(0o644)
        print(f"repeat {r + 1}/{repeat}: floor sequential {floors['1'][-1]:.1f} s, runbook jobs 1/2/3 "
              + "/".join(f"{runs[j][-1]:.1f}" for j in configs) + " s", flush=True)
    seq = floors["1"]
    table = []
    for jobs in configs:
        same = seq if jobs == 1 else floors[f"staged_{jobs}"]
        flat = seq if jobs == 1 else floors[f"flat_{jobs}"]
        xs = runs[jobs]
        table.append({
            "jobs": jobs, "notebooks": n, "runbook": stat(xs),
            "runbook_cpu_s_median": round(median(cpu[jobs]), 2),
            "floor_same_shape": stat(same), "floor_same_shape_stalls": floor_stalls["1" if jobs == 1 else f"staged_{jobs}"],
            "floor_flat": stat(flat),
            "x_sequential_floor_median": round(median(xs) / median(seq), 2),
            "x_sequential_floor_min": round(min(xs) / min(seq), 2),
            "x_same_shape_floor_median": round(median(xs) / median(same), 2)})
    best_parallel = min(median(runs[2]), median(runs[3]))
    return {"table": table, "sequential_floor": stat(seq),
            "target": "jobs=1 within 1.5 x the sequential floor, and under it with parallel jobs",
            "met_sequential_median": median(runs[1]) <= 1.5 * median(seq),
            "met_sequential_min": min(runs[1]) <= 1.5 * min(seq),
            "met_parallel_median": best_parallel < median(seq),
            "met_parallel_vs_best_floor": best_parallel < min(seq),
            "where_sequential": where,
            "kernel_side": kernel_side(work, max(5, repeat), executed)}


def run_ag(base: Path, work: Path, src: Path, sizes: list[int], ag_jobs: list[int], repeat: int) -> dict:
    rows = []
    for size in sizes:
        roles = {f"R{i}": "replica" for i in range(1, size + 1)}
        row: dict = {"replicas": size, "notebooks": 2 * size + 1}
        for jobs in ag_jobs:
            walls, k = [], 0
            for _ in range(repeat):
                with Lab(base, roles, "availability_group") as lab:
                    wall, _ = lab.apply(jobs)
                walls.append(wall)
            row[f"jobs_{jobs}_s"] = round(median(walls), 2)
            row[f"jobs_{jobs}_per_notebook_s"] = round(median(walls) / row["notebooks"], 2)
        walls, k = [], 0
        for _ in range(repeat):
            wall, stalls = floor(src, work, (row["notebooks"],), 1)
            walls.append(wall)
            k += stalls
        row["floor_sequential_s"] = round(median(walls), 2)
        row["floor_stalls"] = k
        rows.append(row)
        print("  " + ", ".join(f"{k_} {v}" for k_, v in row.items()), flush=True)
    return {"rows": rows, "jobs": ag_jobs, "repeat": repeat}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="repeats of each three-instance figure (default 5)")
    ap.add_argument("--replicas", default="2-9", help="AG sizes, e.g. 2-9 or 2,5,9 (default 2-9)")
    ap.add_argument("--ag-jobs", default="1,2", help="jobs for the AG meshes (default 1,2)")
    ap.add_argument("--ag-repeat", type=int, default=1, help="repeats of each AG figure (median; default 1)")
    ap.add_argument("--skip-ag", action="store_true")
    ap.add_argument("--skip-runbook", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = ap.parse_args(argv)
    quiet_logs()
    import nbconvert  # noqa: F401  - imported once, outside every measurement (a warm runner process)
    import papermill  # noqa: F401

    info: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "platform": platform.platform(), "host": socket.gethostname(),
                              "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base = Path(tempfile.mkdtemp(prefix="mirrorkit-bench-"))
    try:
        work = base / "floor"
        work.mkdir()
        src = trivial_notebook(work / "trivial.ipynb")
        papermill_one(src, work / "warmup.ipynb")          # the first kernel start pays the cold caches
        if not args.skip_runbook:
            info["runbook"] = run_runbook(base, work, src, args.repeat)
            print_runbook(info["runbook"])
        if not args.skip_ag:
            info["ag"] = run_ag(base, work, src, parse_range(args.replicas),
                                [int(x) for x in args.ag_jobs.split(",")], args.ag_repeat)
            print_ag(info["ag"])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    info["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload average at start {info['machine']['loadavg_start']}, at end {info['machine']['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def print_runbook(rb: dict) -> None:
    print("\nmirroring runbook (7 notebooks), apply on a fresh lab: median (min) of the repeats, seconds;"
          " CPU = runner process + its kernels (the lab's processes not counted)")
    print(f"{'jobs':>4} {'runbook':>14} {'CPU':>5} {'floor, same shape':>18} {'stalls':>6} "
          f"{'flat floor':>12} {'x seq floor':>12} {'x same-shape floor':>19}")
    for row in rb["table"]:
        r, f, fl = row["runbook"], row["floor_same_shape"], row["floor_flat"]
        print(f"{row['jobs']:>4} {r['median_s']:>7.2f} ({r['min_s']:>5.2f}) "
              f"{row['runbook_cpu_s_median']:>5.1f} "
              f"{f['median_s']:>10.2f} ({f['min_s']:>5.2f}) {row['floor_same_shape_stalls']:>6} "
              f"{fl['median_s']:>5.2f} ({fl['min_s']:>4.2f}) {row['x_sequential_floor_median']:>5.2f} "
              f"({row['x_sequential_floor_min']:>4.2f}) {row['x_same_shape_floor_median']:>19.2f}")
    print(f"target: jobs 1 within 1.5x the sequential floor: median {'met' if rb['met_sequential_median'] else 'NOT met'}, "
          f"best {'met' if rb['met_sequential_min'] else 'NOT met'}; parallel under the sequential floor: median "
          f"{'met' if rb['met_parallel_median'] else 'NOT met'}, under its best run "
          f"{'met' if rb['met_parallel_vs_best_floor'] else 'NOT met'}")
    w = rb.get("where_sequential")
    if w:
        print(f"\nwhere the fastest sequential run's {w['run_wall_s']:.2f} s go:")
        print(f"  {'step':<22} {'wall':>5} {'start':>6} {'cells':>6} {'stop':>5}   slowest cells")
        for s in w["steps"]:
            top = ", ".join(f"{label} {d:.2f}" for label, d in s["slowest_cells"])
            print(f"  {s['step']:<22} {s['wall_s']:>5.2f} {s.get('kernel_start_s', 0):>6.2f} {s.get('cells_s', 0):>6.2f} "
                  f"{s.get('kernel_shutdown_s', 0):>5.2f}   {top}")
        print(f"  after the steps (HTML export, artifacts, manifest, scan): {w['after_steps_s']:.2f} s; "
              f"HTML export alone {sum(w['html_export_s']):.2f} s")
    k = rb["kernel_side"]
    print("papermill, one notebook (s): " + ", ".join(f"{name} {v:.2f}" for name, v in k["notebook_s"].items()))
    if "one_save_of_an_executed_outbound_s" in k:
        print(f"one save of an executed outbound record: {k['one_save_of_an_executed_outbound_s'] * 1000:.1f} ms "
              f"(papermill saves it before and after each of its {k['cells_in_outbound']} cells; the runner's engine at most "
              "once a second and at the end)")


def print_ag(ag: dict) -> None:
    print(f"\navailability-group mesh, apply on a fresh lab (2N+1 notebooks), median of {ag['repeat']}, seconds")
    head = ["replicas", "notebooks"]
    for j in ag["jobs"]:
        head += [f"jobs {j}", "per nb"]
    head += ["floor seq", "stalls"]
    print(" ".join(f"{h:>9}" for h in head))
    for row in ag["rows"]:
        cells = [row["replicas"], row["notebooks"]]
        for j in ag["jobs"]:
            cells += [row[f"jobs_{j}_s"], row[f"jobs_{j}_per_notebook_s"]]
        cells += [row["floor_sequential_s"], row["floor_stalls"]]
        print(" ".join(f"{c:>9}" for c in cells))


if __name__ == "__main__":
    raise SystemExit(main())
