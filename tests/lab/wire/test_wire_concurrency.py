"""Many clients at once: 20 pyodbc connections x 200 queries, plus pytds."""
from __future__ import annotations

import threading
import time

import pyodbc
import pytds

from wire_helpers import odbc_string

CLIENTS = 20
QUERIES = 200


def test_20_clients_x_200_queries(server, engine):
    port = server.address[1]
    errors: list[BaseException] = []
    done = []

    def worker(n: int) -> None:
        try:
            with pyodbc.connect(odbc_string(port), timeout=10, autocommit=True) as c:
                cur = c.cursor()
                for i in range(QUERIES):
                    if i % 3 == 0:
                        assert tuple(cur.execute("SELECT ?, ?", n, i).fetchone()) == (n, i)
                    else:
                        assert cur.execute("SELECT 1").fetchone()[0] == 1
            done.append(n)
        except BaseException as e:     # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert sorted(done) == list(range(CLIENTS))
    assert len(engine.sessions) == CLIENTS


def test_mixed_clients_concurrently(server):
    """4 pyodbc and 4 pytds clients at once: every one finishes all its queries within the deadline."""
    port = server.address[1]
    errors: list[BaseException] = []
    done: list[str] = []

    def odbc(name: str) -> None:
        try:
            with pyodbc.connect(odbc_string(port), timeout=10) as c:
                for _ in range(50):
                    assert len(c.cursor().execute("SELECT big 300").fetchall()) == 300
            done.append(name)
        except BaseException as e:     # noqa: BLE001
            errors.append(e)

    def tds(name: str) -> None:
        try:
            with pytds.connect(dsn="127.0.0.1", port=port, user="u", password="p",
                               autocommit=True) as c, c.cursor() as cur:
                for i in range(100):
                    cur.execute("SELECT %s", (i,))
                    assert cur.fetchall() == [(i,)]
            done.append(name)
        except BaseException as e:     # noqa: BLE001
            errors.append(e)

    clients = [(f, f"{f.__name__}-{n}") for n, f in enumerate((odbc, tds) * 4)]
    # daemon threads: a client that hangs fails the test below instead of holding pytest at exit
    threads = [threading.Thread(target=f, args=(name,), name=name, daemon=True) for f, name in clients]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60     # about 1 s here; generous for a loaded CI machine
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not errors, errors[:3]
    assert not hung, f"clients still waiting after 60 s: {hung}"
    assert sorted(done) == sorted(name for _, name in clients)
