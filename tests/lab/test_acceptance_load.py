"""Acceptance (lab): under 50 concurrent pyodbc + FreeTDS connections for a bounded time the lab answers
every query of a catalog read loop — no error, every connection answered, throughput and latency within
bounds.

Measured on the 2-core development machine (20 s, 50 connections, this endpoint/tcp_endpoints join):
about 10,800 queries/s, 0 errors, p99 about 30 ms (the issue reported 1,750 q/s and p99 100 ms for its
run). The bounds are set far from either for a loaded 2-core CI machine: a floor of 150 q/s (under a
tenth of the lower figure) and a p99 ceiling of 2 s (twenty times the higher one); MIRRORKIT_LOAD_SECONDS
changes the duration (default 20 s).
"""
from __future__ import annotations

import os
import threading
import time

CONNECTIONS = 50
SECONDS = float(os.environ.get("MIRRORKIT_LOAD_SECONDS", "20"))
MIN_QPS = 150
MAX_P99 = 2.0
QUERY = ("SELECT e.name, e.state_desc, t.port FROM sys.database_mirroring_endpoints AS e "
         "JOIN sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id")


def test_50_connections_answer_every_catalog_query(lab):
    h = lab("HOST_A")["HOST_A"]
    h.sql("CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-1'")
    h.sql("CREATE CERTIFICATE ep_cert WITH SUBJECT = 'endpoint certificate'")
    h.sql("CREATE ENDPOINT Mirroring STATE = STARTED AS TCP (LISTENER_PORT = 5022) "
          "FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE ep_cert, ROLE = ALL)")
    expected = [("Mirroring", "STARTED", 5022)]
    connections = [h.connect(timeout=30) for _ in range(CONNECTIONS)]
    window = [0.0, 0.0]                  # start, stop: set when the last connection is ready

    def go() -> None:
        window[0] = time.monotonic()
        window[1] = window[0] + SECONDS
    start = threading.Barrier(CONNECTIONS, action=go)
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors: list[tuple[int, BaseException]] = []

    def client(n: int) -> None:
        cur = connections[n].cursor()
        try:
            start.wait(30)
            while time.monotonic() < window[1]:
                t0 = time.monotonic()
                rows = [tuple(r) for r in cur.execute(QUERY).fetchall()]
                latencies[n].append(time.monotonic() - t0)
                assert rows == expected, rows
        except BaseException as e:        # noqa: BLE001 - reported below
            errors.append((n, e))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 60)
    elapsed = time.monotonic() - window[0]
    hung = sum(t.is_alive() for t in threads)
    for cn in connections:
        cn.close()
    all_latencies = sorted(x for per in latencies for x in per)
    total = len(all_latencies)
    qps = total / elapsed
    p99 = all_latencies[int(total * 0.99) - 1] if total else float("inf")
    summary = f"{total} queries in {elapsed:.1f} s = {qps:.0f} q/s, p99 {p99 * 1000:.0f} ms, {len(errors)} errors"
    print(summary)
    assert not errors, f"{summary}: {errors[:3]}"
    assert hung == 0, f"{summary}: {hung} connections still waiting"
    assert all(latencies), f"{summary}: connections never answered: {[n for n, x in enumerate(latencies) if not x]}"
    assert qps >= MIN_QPS, summary
    assert p99 <= MAX_P99, summary
