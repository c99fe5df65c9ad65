"""Acceptance (lab part 1): 20 concurrent clients, each with its own pyodbc + FreeTDS connection,
run 200 queries each without an error and with correct answers."""
from __future__ import annotations

import threading
import time

import pyodbc

CLIENTS = 20
QUERIES = 200


def test_20_clients_200_queries_each(lab):
    h = lab("HOST_A")["HOST_A"]
    with h.connect() as cn:
        cur = cn.cursor()
        cur.execute("CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-1'")
        cur.execute("CREATE CERTIFICATE ep_cert WITH SUBJECT = 'endpoint certificate'")
        cur.execute("CREATE ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = 5022) "
                    "FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE ep_cert, ROLE = ALL)")
        eid = cur.execute("SELECT endpoint_id FROM sys.database_mirroring_endpoints").fetchall()[0][0]
        thumb = cur.execute("SELECT thumbprint FROM sys.certificates WHERE name = 'ep_cert'").fetchall()[0][0]

    connections = [h.connect() for _ in range(CLIENTS)]     # all sessions open at the same time
    start = threading.Barrier(CLIENTS)
    errors: list[tuple[int, int, BaseException]] = []
    done = [0] * CLIENTS
    spids: list[int] = [0] * CLIENTS

    def client(n: int):
        cn = connections[n]
        cur = cn.cursor()
        try:
            spids[n] = cur.execute("SELECT @@SPID").fetchall()[0][0]
            start.wait(timeout=30)
            for i in range(QUERIES):
                kind = i % 4
                if kind == 0:
                    rows = cur.execute("SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = ?",
                                       eid).fetchall()
                    assert [tuple(r) for r in rows] == [("Endpoint_Mirroring", "STARTED")]
                elif kind == 1:
                    rows = cur.execute("SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = 4").fetchall()
                    assert [tuple(r) for r in rows] == [("TSQL Default TCP", "STARTED")]
                elif kind == 2:
                    rows = cur.execute("SELECT thumbprint, CONVERT(varchar(max), thumbprint, 1) FROM sys.certificates "
                                       "WHERE name = ?", "ep_cert").fetchall()
                    assert [tuple(r) for r in rows] == [(thumb, "0x" + bytes(thumb).hex().upper())]
                else:
                    rows = cur.execute("SELECT ? * 1000 + ?, @@SPID", n, i).fetchall()
                    assert [tuple(r) for r in rows] == [(n * 1000 + i, spids[n])]
                done[n] += 1
        except BaseException as e:          # noqa: BLE001 - collected and reported below
            errors.append((n, done[n], e))
            try:
                start.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=client, args=(n,), name=f"client-{n}") for n in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - t0
    for cn in connections:
        cn.close()
    assert not errors, errors[:3]
    assert done == [QUERIES] * CLIENTS
    assert len(set(spids)) == CLIENTS                # one session each
    assert not any(t.is_alive() for t in threads)
    assert elapsed < 60, elapsed
    # the instance is still healthy, and all sessions are gone again
    # (the server ends a session when it sees its socket close, so give it a moment)
    with h.connect() as cn:
        cur = cn.cursor()
        own = cur.execute("SELECT @@SPID").fetchone()[0]
        deadline = time.monotonic() + 10
        while True:
            left = [tuple(r) for r in cur.execute(
                "SELECT session_id, program_name FROM sys.dm_exec_sessions WHERE is_user_process = 1").fetchall()]
            if [s for s, _ in left] == [own] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [s for s, _ in left] == [own], f"sessions left besides our own ({own}): {left}"


def test_concurrent_ddl_from_many_clients(lab):
    """Clients creating logins at the same time: every statement succeeds or fails cleanly, and
    every acknowledged login exists exactly once."""
    h = lab("HOST_A")["HOST_A"]
    per_client, clients = 15, 8
    errors: list[BaseException] = []
    created: list[str] = []
    lock = threading.Lock()

    def client(n: int):
        cn = h.connect()
        cur = cn.cursor()
        try:
            for i in range(per_client):
                name = f"conc_{n}_{i}"
                cur.execute(f"CREATE LOGIN {name} WITH PASSWORD = 'Conc!Passw0rd-{i}'")
                with lock:
                    created.append(name)
                # everybody also tries the same shared name: exactly one wins, the others get 15025
                try:
                    cur.execute(f"CREATE LOGIN shared_{i} WITH PASSWORD = 'Shared!Passw0rd-{i}'")
                except pyodbc.Error as e:
                    assert "(15025)" in e.args[1], e.args
        except BaseException as e:          # noqa: BLE001
            errors.append(e)
        finally:
            cn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    with h.connect() as cn:
        cur = cn.cursor()
        names = [r[0] for r in cur.execute("SELECT name FROM sys.server_principals WHERE name LIKE 'conc!_%' "
                                           "ESCAPE '!'").fetchall()]
        assert sorted(names) == sorted(created)
        assert len(created) == per_client * clients
        shared = [r[0] for r in cur.execute("SELECT name FROM sys.server_principals WHERE name LIKE 'shared!_%' "
                                            "ESCAPE '!'").fetchall()]
        assert sorted(shared) == sorted(f"shared_{i}" for i in range(per_client))
