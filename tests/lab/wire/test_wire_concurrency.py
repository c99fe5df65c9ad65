"""Many clients at once: 20 pyodbc connections x 200 queries, plus pytds."""
from __future__ import annotations

import threading

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
    port = server.address[1]
    errors: list[BaseException] = []

    def odbc() -> None:
        try:
            with pyodbc.connect(odbc_string(port), timeout=10) as c:
                for _ in range(50):
                    assert len(c.cursor().execute("SELECT big 300").fetchall()) == 300
        except BaseException as e:     # noqa: BLE001
            errors.append(e)

    def tds() -> None:
        try:
            with pytds.connect(dsn="127.0.0.1", port=port, user="u", password="p",
                               autocommit=True) as c, c.cursor() as cur:
                for i in range(100):
                    cur.execute("SELECT %s", (i,))
                    assert cur.fetchall() == [(i,)]
        except BaseException as e:     # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=f) for f in (odbc, tds) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
