"""Recovery models, BACKUP and RESTORE (issue #11 item 2) through pyodbc + FreeTDS: the log chain,
media sets with several backup sets, msdb history, and the errors SQL Server gives when a chain is
broken or a restore is wrong. Microsoft's prepare-a-mirror sequence runs as the docs write it
(docs/database-engine/database-mirroring/prepare-a-mirror-database-for-mirroring-sql-server.md)."""
from __future__ import annotations

import io
import sqlite3
import time

import pytest

from mirrorkit_lab import supervisor
from mirrorkit_lab.engine.results import Message
from tests.conftest import SA_PASSWORD
from tests.lab.test_statements_dba import fails, run

BAK = r"C:\AdventureWorks.bak"
ROWS = "SELECT id, item, qty, note FROM AdventureWorks.dbo.orders ORDER BY id"


def make_database(cur, name: str = "AdventureWorks", rows: int = 3) -> None:
    cur.execute(f"CREATE DATABASE {name}")
    cur.execute(f"ALTER DATABASE {name} SET RECOVERY FULL")
    cur.execute(f"CREATE TABLE {name}.dbo.orders (id INT IDENTITY(1,1) PRIMARY KEY, item NVARCHAR(20) NOT NULL, "
                "qty INT NOT NULL DEFAULT (1), note VARBINARY(8) NULL)")
    insert(cur, name, rows)


def insert(cur, name: str, n: int) -> None:
    for i in range(n):
        cur.execute(f"INSERT INTO {name}.dbo.orders (item, qty, note) VALUES (?, ?, ?)", f"item{i}", i, b"\x00\x01")


def execute_all(cur, sql: str) -> list[tuple[str, str]]:
    """Run one statement and return its informational messages (number, text) in order."""
    cur.execute(sql)
    msgs = list(cur.messages)
    while cur.nextset():
        msgs += cur.messages
    return [(m[0].split("(")[-1].rstrip(")"), m[1].split("]")[-1]) for m in msgs]


def state(cur, name: str = "AdventureWorks") -> str:
    return run(cur, f"SELECT state_desc FROM sys.databases WHERE name = '{name}'")[0][0]


def lab_cp(lab_, src: str, dst: str) -> None:
    """`mirrorkit lab cp` (supervisor.copy) between in-process instances recorded in the state dir."""
    supervisor.write_state(lab_.state_dir, [supervisor.Recorded(h.name, h.host, h.port, None)
                                            for h in lab_.instances.values()])
    supervisor.copy(lab_.state_dir, src, dst, out=io.StringIO())


def engine_messages(handle, sql: str) -> list[int]:
    """Every message number one batch produces, straight from the engine (FreeTDS shows only the first
    error of a statement; SQL Server follows a BACKUP/RESTORE error with 3013)."""
    s = handle.instance.login("sa", SA_PASSWORD, "master")
    try:
        return [e.number for e in s.execute(sql) if isinstance(e, Message)]
    finally:
        s.close()


@pytest.fixture
def pair(lab):
    lab_ = lab("PRINCIPAL", "MIRROR")
    a, b = lab_["PRINCIPAL"].connect(), lab_["MIRROR"].connect()
    yield lab_, a.cursor(), b.cursor()
    a.close()
    b.close()


# ---- Microsoft's documented sequence ---------------------------------------------------------------

def test_prepare_a_mirror_database_as_the_docs_write_it(pair):
    """prepare-a-mirror-database-for-mirroring-sql-server.md, example: full backup WITH FORMAT and a log
    backup to the same file on the principal; the file copied (`mirrorkit lab cp`); RESTORE DATABASE …
    WITH NORECOVERY and RESTORE LOG … WITH NORECOVERY on the mirror, which stays RESTORING."""
    lab_, p, m = pair
    make_database(p)
    assert execute_all(p, f"BACKUP DATABASE AdventureWorks TO DISK = '{BAK}' WITH FORMAT")[-1][1].startswith(
        "BACKUP DATABASE successfully processed ")
    insert(p, "AdventureWorks", 2)
    msgs = execute_all(p, f"BACKUP LOG AdventureWorks TO DISK = '{BAK}'")
    assert msgs[0] == ("4035", "Processed 1 pages for database 'AdventureWorks', file 'AdventureWorks_log' on file 2.")
    assert msgs[-1][1].startswith("BACKUP LOG successfully processed 1 pages in ")
    lab_cp(lab_, f"PRINCIPAL:{BAK}", f"MIRROR:{BAK}")

    msgs = execute_all(m, f"RESTORE DATABASE AdventureWorks FROM DISK = '{BAK}' WITH NORECOVERY")
    assert [n for n, _ in msgs] == ["4035", "4035", "3014"]
    assert msgs[-1][1].startswith("RESTORE DATABASE successfully processed ")
    # the docs' "WITH FILE=1" names the full backup in this file: SQL Server refuses it (3135), FILE = 2 is the log
    assert fails(m, f"RESTORE LOG AdventureWorks FROM DISK = '{BAK}' WITH FILE=1, NORECOVERY") == (
        3135, f"The backup set in file '{BAK}' was created by BACKUP DATABASE and cannot be used for this restore "
              "operation.")
    execute_all(m, f"RESTORE LOG AdventureWorks FROM DISK = '{BAK}' WITH FILE=2, NORECOVERY")
    assert state(m) == "RESTORING"
    assert fails(m, "USE AdventureWorks")[0] == 927
    assert fails(m, ROWS)[0] == 927
    assert run(m, "SELECT destination_database_name, restore_type, recovery FROM msdb.dbo.restorehistory "
                  "ORDER BY restore_history_id") == [("AdventureWorks", "D", False), ("AdventureWorks", "L", False)]


def test_restored_copy_recovers_with_identical_rows_and_identity_continues(pair):
    """Through the lab's UNC share (\\\\host\\share reaches one directory every instance sees)."""
    lab_, p, m = pair
    make_database(p, rows=4)
    p.execute("DELETE FROM AdventureWorks.dbo.orders WHERE id = 4")       # identity must not reuse 4
    unc = r"\\fileserver\backups\aw.bak"
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{unc}' WITH FORMAT, INIT, NAME = 'aw full'")
    insert(p, "AdventureWorks", 1)
    p.execute("UPDATE AdventureWorks.dbo.orders SET qty = 40 WHERE id = 2")
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{unc}'")
    p.execute("CREATE TABLE AdventureWorks.dbo.later (k INT)")             # DDL travels in the log too
    p.execute("INSERT INTO AdventureWorks.dbo.later (k) VALUES (7)")
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{unc}'")
    m.execute(f"RESTORE DATABASE AdventureWorks FROM DISK = '{unc}' WITH FILE = 1, NORECOVERY")
    m.execute(f"RESTORE LOG AdventureWorks FROM DISK = '{unc}' WITH FILE = 2, NORECOVERY")
    m.execute(f"RESTORE LOG AdventureWorks FROM DISK = '{unc}' WITH FILE = 3, NORECOVERY")
    m.execute("RESTORE DATABASE AdventureWorks WITH RECOVERY")
    assert state(m) == "ONLINE"
    assert run(m, ROWS) == run(p, ROWS)
    assert [r[0] for r in run(m, ROWS)] == [1, 2, 3, 5]
    assert run(m, "SELECT k FROM AdventureWorks.dbo.later") == [(7,)]
    for cur in (p, m):
        insert(cur, "AdventureWorks", 1)
    assert run(m, ROWS) == run(p, ROWS)
    assert run(m, "SELECT MAX(id) FROM AdventureWorks.dbo.orders") == [(6,)]
    # the restored database keeps the family and its log chain: a log backup works at once
    fam = "SELECT family_guid FROM sys.database_recovery_status WHERE database_id = DB_ID('AdventureWorks')"
    assert run(m, fam) == run(p, fam)
    m.execute(r"BACKUP LOG AdventureWorks TO DISK = 'C:\again.trn'")
    assert fails(m, "RESTORE DATABASE AdventureWorks WITH RECOVERY")[0] == 3153


def test_restore_on_a_second_instance_with_move_and_linux_paths(pair):
    lab_, p, m = pair
    make_database(p)
    p.execute("BACKUP DATABASE AdventureWorks TO DISK = '/var/opt/mssql/data/aw.bak' WITH COMPRESSION, CHECKSUM")
    lab_cp(lab_, "PRINCIPAL:aw.bak", "MIRROR:/var/opt/mssql/backup/aw.bak")   # a bare name is in the data dir
    assert run(m, "RESTORE FILELISTONLY FROM DISK = '/var/opt/mssql/backup/aw.bak'")[0][:3] == (
        "AdventureWorks", r"C:\Program Files\Microsoft SQL Server\MSSQL15.MSSQLSERVER\MSSQL\DATA\AdventureWorks.mdf",
        "D")
    m.execute("RESTORE DATABASE AdventureWorks FROM DISK = '/var/opt/mssql/backup/aw.bak' WITH "
              "MOVE 'AdventureWorks' TO '/var/opt/mssql/data/aw.mdf', MOVE 'AdventureWorks_log' TO "
              "'/var/opt/mssql/data/aw_log.ldf', RECOVERY, STATS = 10, CHECKSUM")
    assert run(m, "SELECT name, physical_name FROM AdventureWorks.sys.database_files ORDER BY file_id") == [
        ("AdventureWorks", "/var/opt/mssql/data/aw.mdf"), ("AdventureWorks_log", "/var/opt/mssql/data/aw_log.ldf")]
    assert run(m, ROWS) == run(p, ROWS)
    header = run(m, "RESTORE HEADERONLY FROM DISK = '/var/opt/mssql/backup/aw.bak'")
    assert [(r[4], r[39 - 1]) for r in header] == [(True, True)]           # Compressed, HasBackupChecksums


# ---- media sets -----------------------------------------------------------------------------------

def test_several_backup_sets_in_one_file_and_headeronly(pair):
    lab_, p, _ = pair
    make_database(p)
    f = r"C:\b\aw.bak"
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH FORMAT, MEDIANAME = 'aw', NAME = 'full', "
              "DESCRIPTION = 'nightly'")
    insert(p, "AdventureWorks", 1)
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{f}' WITH NOINIT, NAME = 'log 1'")
    insert(p, "AdventureWorks", 1)
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{f}' WITH NAME = 'log 2'")
    cols = [d[0] for d in p.execute(f"RESTORE HEADERONLY FROM DISK = '{f}'").description]
    rows = [dict(zip(cols, r)) for r in p.fetchall()]
    for name in ("BackupName", "BackupType", "Position", "DatabaseName", "FirstLSN", "LastLSN", "CheckpointLSN",
                 "DatabaseBackupLSN", "BackupStartDate", "BackupFinishDate", "RecoveryModel", "FamilyGUID",
                 "IsCopyOnly", "BackupTypeDescription", "ServerName", "BeginsLogChain"):
        assert name in cols
    assert [(r["BackupName"], r["BackupType"], r["Position"], r["BackupTypeDescription"]) for r in rows] == [
        ("full", 1, 1, "Database"), ("log 1", 2, 2, "Transaction Log"), ("log 2", 2, 3, "Transaction Log")]
    assert rows[0]["BackupDescription"] == "nightly" and rows[0]["ServerName"] == "PRINCIPAL"
    assert rows[2]["FirstLSN"] == rows[1]["LastLSN"]                     # an unbroken chain
    assert rows[1]["DatabaseBackupLSN"] == rows[2]["DatabaseBackupLSN"] == rows[0]["CheckpointLSN"]
    assert [r["BeginsLogChain"] for r in rows] == [False, True, False]
    assert {r["RecoveryModel"] for r in rows} == {"FULL"}
    assert len(run(p, f"RESTORE HEADERONLY FROM DISK = '{f}' WITH FILE = 2")) == 1
    history = run(p, "SELECT b.position, b.type, b.name, f.physical_device_name, b.first_lsn, b.last_lsn "
                     "FROM msdb.dbo.backupset b JOIN msdb.dbo.backupmediafamily f ON f.media_set_id = b.media_set_id "
                     "WHERE b.database_name = 'AdventureWorks' ORDER BY b.backup_set_id")
    assert [(r[0], r[1], r[2], r[3]) for r in history] == [(1, "D", "full", f), (2, "L", "log 1", f),
                                                          (3, "L", "log 2", f)]
    assert [(r[4], r[5]) for r in history] == [(r["FirstLSN"], r["LastLSN"]) for r in rows]
    assert fails(p, f"BACKUP LOG AdventureWorks TO DISK = '{f}' WITH MEDIANAME = 'other'")[0] == 4037
    assert run(p, f"RESTORE HEADERONLY FROM DISK = '{f}' WITH FILE = 9") == []
    assert fails(p, f"RESTORE VERIFYONLY FROM DISK = '{f}' WITH FILE = 9")[0] == 4038
    assert execute_all(p, f"RESTORE VERIFYONLY FROM DISK = '{f}' WITH FILE = 3") == [
        ("3262", "The backup set on file 3 is valid.")]


def test_init_and_format_overwrite_noinit_appends(pair):
    lab_, p, _ = pair
    make_database(p)
    f = r"C:\aw.bak"
    positions = f"RESTORE HEADERONLY FROM DISK = '{f}'"
    for _ in range(2):
        p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}'")     # NOINIT is the default
    assert [r[5] for r in run(p, positions)] == [1, 2]
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH INIT")
    assert [r[5] for r in run(p, positions)] == [1]
    media = "SELECT COUNT(DISTINCT media_set_id) FROM msdb.dbo.backupset"
    assert run(p, media) == [(1,)]                                          # INIT keeps the media set
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH FORMAT, MEDIANAME = 'fresh'")
    assert [r[5] for r in run(p, positions)] == [1]
    assert run(p, media) == [(2,)]
    assert run(p, "SELECT name FROM msdb.dbo.backupmediaset ORDER BY media_set_id") == [(None,), ("fresh",)]


def test_striped_backup_needs_every_family(pair):
    lab_, p, m = pair
    make_database(p)
    p.execute(r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\s1.bak', DISK = 'C:\s2.bak' WITH FORMAT")
    for f in ("s1.bak", "s2.bak"):
        lab_cp(lab_, f"PRINCIPAL:C:\\{f}", f"MIRROR:C:\\{f}")
    assert fails(m, r"RESTORE DATABASE AdventureWorks FROM DISK = 'C:\s2.bak'")[0] == 3132
    m.execute(r"RESTORE DATABASE AdventureWorks FROM DISK = 'C:\s2.bak', DISK = 'C:\s1.bak'")
    assert run(m, ROWS) == run(p, ROWS)
    assert fails(p, r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\s1.bak'")[0] == 3231


# ---- recovery models and the log chain ---------------------------------------------------------------

def test_simple_recovery_refuses_log_backups(pair):
    _, p, _ = pair
    make_database(p)
    p.execute("ALTER DATABASE AdventureWorks SET RECOVERY SIMPLE")
    p.execute(r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\s.bak'")
    assert fails(p, r"BACKUP LOG AdventureWorks TO DISK = 'C:\s.trn'") == (
        4208, "The statement BACKUP LOG is not allowed while the recovery model is SIMPLE. Use BACKUP DATABASE or "
              "change the recovery model using ALTER DATABASE.")
    # back to FULL: the log chain starts only with a new full backup
    p.execute("ALTER DATABASE AdventureWorks SET RECOVERY FULL")
    assert fails(p, r"BACKUP LOG AdventureWorks TO DISK = 'C:\s.trn'") == (
        4214, "BACKUP LOG cannot be performed because there is no current database backup.")
    p.execute(r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\s.bak'")
    p.execute(r"BACKUP LOG AdventureWorks TO DISK = 'C:\s.trn'")


def test_errors_come_with_3013(pair):
    lab_, p, _ = pair
    make_database(p)
    assert engine_messages(lab_["PRINCIPAL"], r"BACKUP LOG AdventureWorks TO DISK = 'C:\x.trn'") == [4214, 3013]
    assert engine_messages(lab_["PRINCIPAL"], r"RESTORE DATABASE nowhere FROM DISK = 'C:\none.bak'") == [3201, 3013]
    assert fails(p, r"RESTORE DATABASE nowhere FROM DISK = 'C:\none.bak'") == (
        3201, r"Cannot open backup device 'C:\none.bak'. Operating system error 2(The system cannot find the file "
              "specified.).")
    assert fails(p, r"BACKUP DATABASE nowhere TO DISK = 'C:\x.bak'")[0] == 911
    assert fails(p, r"BACKUP DATABASE tempdb TO DISK = 'C:\x.bak'")[0] == 3147
    assert fails(p, r"BACKUP LOG master TO DISK = 'C:\x.bak'")[0] == 4212
    p.execute("BEGIN TRAN")
    assert fails(p, r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\x.bak'") == (
        3021, "Cannot perform a backup or restore operation within a transaction.")
    assert fails(p, r"RESTORE HEADERONLY FROM DISK = 'C:\x.bak'")[0] == 3021
    p.execute("ROLLBACK")
    assert fails(p, r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\x.bak' WITH DIFFERENTIAL")[0] == 59001


def test_copy_only_backups_leave_the_chain_alone(pair):
    lab_, p, m = pair
    make_database(p)
    f = r"C:\chain.bak"
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH FORMAT")      # 1
    insert(p, "AdventureWorks", 1)
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{f}'")                      # 2
    insert(p, "AdventureWorks", 1)
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH COPY_ONLY")  # 3
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{f}' WITH COPY_ONLY")       # 4: truncates nothing
    insert(p, "AdventureWorks", 1)
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{f}'")                      # 5
    header = run(p, f"RESTORE HEADERONLY FROM DISK = '{f}'")
    assert [r[43] for r in header] == [False, False, True, True, False]           # IsCopyOnly
    assert header[4][13] == header[1][14]                                         # 5 starts where 2 ended
    assert header[2][16] == header[0][15]                 # the copy-only full's DatabaseBackupLSN: still full 1
    lab_cp(lab_, f"PRINCIPAL:{f}", f"MIRROR:{f}")
    m.execute(f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}' WITH FILE = 1, NORECOVERY")
    m.execute(f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 2, NORECOVERY")
    m.execute(f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 5, RECOVERY")
    assert run(m, ROWS) == run(p, ROWS)
    # and the copy-only full restores on its own, followed by the log that spans it
    m.execute(f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}' WITH FILE = 3, NORECOVERY, REPLACE")
    m.execute(f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 5")
    assert run(m, ROWS) == run(p, ROWS)


def test_log_chain_errors(pair):
    lab_, p, m = pair
    make_database(p)
    f = r"C:\c.bak"
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH FORMAT")
    for _ in range(2):
        insert(p, "AdventureWorks", 1)
        p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{f}'")
    lab_cp(lab_, f"PRINCIPAL:{f}", f"MIRROR:{f}")
    assert fails(m, f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 2")[0] == 3118
    m.execute(f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}' WITH NORECOVERY")
    header = run(m, f"RESTORE HEADERONLY FROM DISK = '{f}'")
    assert fails(m, f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 3, NORECOVERY") == (
        4305, f"The log in this backup set begins at LSN {header[2][13]}, which is too recent to apply to the "
              f"database. An earlier log backup that includes LSN {header[0][14]} can be restored.")
    m.execute(f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 2, NORECOVERY")
    assert fails(m, f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 2, NORECOVERY")[0] == 4326
    m.execute(f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 3, RECOVERY")
    assert run(m, ROWS) == run(p, ROWS)
    assert fails(m, f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 3") == (
        3117, "The log or differential backup cannot be restored because no files are ready to rollforward.")
    # a log backup of another database with the same name
    m.execute("DROP DATABASE AdventureWorks")
    make_database(m)
    m.execute(r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\other.bak'")
    m.execute(r"BACKUP LOG AdventureWorks TO DISK = 'C:\other.bak' WITH NORECOVERY")   # tail: now RESTORING
    assert state(m) == "RESTORING"
    assert fails(m, f"RESTORE LOG AdventureWorks FROM DISK = '{f}' WITH FILE = 2")[0] == 3154


def test_restore_database_errors(pair):
    lab_, p, m = pair
    make_database(p)
    f = r"C:\r.bak"
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH FORMAT")
    # another database of that name
    make_database(m)
    lab_cp(lab_, f"PRINCIPAL:{f}", f"MIRROR:{f}")
    assert fails(m, f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}'") == (
        3154, "The backup set holds a backup of a database other than the existing 'AdventureWorks' database.")
    second = lab_["MIRROR"].connect()
    second.cursor().execute("USE AdventureWorks")
    assert fails(m, f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}' WITH REPLACE")[0] == 3101
    second.close()
    dbid = run(m, "SELECT DB_ID('AdventureWorks')")[0][0]
    deadline = time.monotonic() + 10            # the server ends the closed session on its own time
    while lab_["MIRROR"].instance.database_in_use(dbid) and time.monotonic() < deadline:
        time.sleep(0.02)
    m.execute(f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}' WITH REPLACE")
    assert run(m, ROWS) == run(p, ROWS)
    # the same database, online, with log not yet backed up: the tail would be lost
    insert(p, "AdventureWorks", 1)
    assert fails(p, f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}'")[0] == 3159
    p.execute(f"BACKUP LOG AdventureWorks TO DISK = '{f}'")
    p.execute(f"RESTORE DATABASE AdventureWorks FROM DISK = '{f}' WITH FILE = 1")
    # a copy under another name on the same instance needs MOVE: its files belong to the original
    assert fails(p, f"RESTORE DATABASE aw_copy FROM DISK = '{f}'") == (
        1834, r"The file 'C:\Program Files\Microsoft SQL Server\MSSQL15.MSSQLSERVER\MSSQL\DATA\AdventureWorks.mdf' "
              "cannot be overwritten. It is being used by database 'AdventureWorks'.")
    assert engine_messages(lab_["PRINCIPAL"], f"RESTORE DATABASE aw_copy FROM DISK = '{f}'") == [
        1834, 3156, 1834, 3156, 3119, 3013]
    assert fails(p, f"RESTORE DATABASE aw_copy FROM DISK = '{f}' WITH MOVE 'nope' TO 'C:\\n.mdf'")[0] == 3234
    p.execute(f"RESTORE DATABASE aw_copy FROM DISK = '{f}' WITH MOVE 'AdventureWorks' TO 'C:\\aw_copy.mdf', "
              "MOVE 'AdventureWorks_log' TO 'C:\\aw_copy.ldf'")
    assert run(p, "SELECT COUNT(*) FROM aw_copy.dbo.orders") == [(3,)]
    assert fails(p, f"RESTORE DATABASE aw_copy2 FROM DISK = '{f}' WITH FILE = 2")[0] == 3135


def test_corrupted_and_foreign_files_fail_cleanly(pair):
    lab_, p, _ = pair
    make_database(p)
    f = r"C:\good.bak"
    p.execute(f"BACKUP DATABASE AdventureWorks TO DISK = '{f}' WITH FORMAT")
    fs = lab_["PRINCIPAL"].instance.fs
    data = fs.read_bytes(f)
    cases = {r"C:\garbage.bak": (b"TAPE" * 100, 3241), r"C:\empty.bak": (b"", 3241),
             r"C:\torn.bak": (data[: len(data) // 2], 3203), r"C:\flip.bak": (data[:-40] + b"X" + data[-39:], 3189),
             r"C:\cut.bak": (data[:-1], 3203)}
    for path, (content, number) in cases.items():
        fs.write_new(path, content)
        for sql in (f"RESTORE DATABASE broken FROM DISK = '{path}'", f"RESTORE HEADERONLY FROM DISK = '{path}'"):
            assert fails(p, sql)[0] == number, (path, sql)
    assert fails(p, r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\garbage.bak'")[0] == 3241   # NOINIT reads it
    p.execute(r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\garbage.bak' WITH FORMAT")
    assert len(run(p, r"RESTORE HEADERONLY FROM DISK = 'C:\garbage.bak'")) == 1
    assert fails(p, r"RESTORE HEADERONLY FROM DISK = 'C:\..\..\escape.bak'")[0] == 3201
    assert run(p, "SELECT name FROM sys.databases WHERE name = 'broken'") == []
    assert run(p, "SELECT COUNT(*) FROM AdventureWorks.dbo.orders") == [(3,)]


# ---- the log itself ----------------------------------------------------------------------------------

class FloorMirroring:
    """A mirroring layer stand-in that only holds the log back to `floor`."""

    def __init__(self, floor):
        self.floor = floor

    def log_floor(self, database_id):
        return self.floor

    def keeps_log(self, database_id):
        return False

    def committed(self, database_id, end_lsn):
        pass

    def guard(self, database_id, purpose):
        pass

    def prevents(self, database_id, action):
        pass


def test_log_backup_truncates_the_log_but_not_below_the_mirroring_floor(pair):
    lab_, p, _ = pair
    h = lab_["PRINCIPAL"]
    make_database(p)
    dbid = run(p, "SELECT DB_ID('AdventureWorks')")[0][0]

    def log_lsns():
        with sqlite3.connect(h.instance.db_path) as c:
            return [r[0] for r in c.execute("SELECT lsn FROM t_log WHERE database_id = ? ORDER BY lsn", (dbid,))]
    assert log_lsns() == []                          # FULL before its first full backup keeps no log
    p.execute(r"BACKUP DATABASE AdventureWorks TO DISK = 'C:\t.bak'")
    insert(p, "AdventureWorks", 3)
    kept = log_lsns()
    assert len(kept) >= 6
    p.execute(r"BACKUP LOG AdventureWorks TO DISK = 'C:\t.bak'")
    assert log_lsns() == []
    insert(p, "AdventureWorks", 2)
    before = log_lsns()
    h.instance.mirroring = FloorMirroring(before[1])
    try:
        p.execute(r"BACKUP LOG AdventureWorks TO DISK = 'C:\t.bak'")
        assert log_lsns()[0] == before[1]            # the session still needs these
        h.instance.mirroring.floor = None
        p.execute(r"BACKUP LOG AdventureWorks TO DISK = 'C:\t.bak'")
        assert log_lsns() == []
    finally:
        h.instance.mirroring = None
    assert run(p, "SELECT log_reuse_wait_desc FROM sys.databases WHERE name = 'AdventureWorks'") == [("NOTHING",)]


def test_a_version_2_state_file_gains_the_history_tables_in_place(tmp_path):
    from mirrorkit_lab.engine import store
    path = tmp_path / "instance.db"
    store.initialise(path)
    with sqlite3.connect(path) as c:
        for t in ("t_backupset", "t_backupmediaset", "t_backupmediafamily", "t_restorehistory"):
            c.execute(f"DROP TABLE {t}")
        c.execute("UPDATE t_meta SET value = 2 WHERE name = 'schema_version'")
        c.execute("INSERT INTO t_databases (database_id, name, state) VALUES (9, 'kept', 0)")
    assert store.initialise(path) is False
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT value FROM t_meta WHERE name = 'schema_version'").fetchone() == (3,)
        assert c.execute("SELECT COUNT(*) FROM t_backupset").fetchone() == (0,)
        assert c.execute("SELECT name FROM t_databases WHERE database_id = 9").fetchone() == ("kept",)


def test_write_replace_swaps_files_atomically_and_refuses_links(tmp_path):
    import os
    from mirrorkit_lab.fs import PathNotAllowed, ServerFileError, ServerFileSystem
    fs = ServerFileSystem(tmp_path / "fs")
    fs.write_replace(r"C:\b\x.bak", b"one")
    fs.write_replace(r"C:\b\x.bak", b"two")
    assert fs.read_bytes("c:/b/x.bak") == b"two"
    assert [n for n in os.listdir(fs.resolve(r"C:\b")) if n.startswith(".mk-tmp")] == []
    os.symlink(tmp_path / "outside", fs.resolve(r"C:\b\link.bak"))
    with pytest.raises(PathNotAllowed):
        fs.write_replace(r"C:\b\link.bak", b"x")
    assert not (tmp_path / "outside").exists()
    os.mkdir(fs.resolve(r"C:\b\dir.bak"))
    with pytest.raises(ServerFileError):
        fs.write_replace(r"C:\b\dir.bak", b"x")
    with pytest.raises(PathNotAllowed):
        fs.write_replace(r"C:\..\..\x.bak", b"x")
