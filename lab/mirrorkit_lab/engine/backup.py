"""BACKUP DATABASE / LOG and RESTORE DATABASE / LOG / HEADERONLY / FILELISTONLY / VERIFYONLY.

The log chain: a full backup (not COPY_ONLY, not SIMPLE) sets t_databases.database_backup_lsn,
from then on commits keep their log (session._close_log); BACKUP LOG copies the records from
last_log_backup_lsn (SQL Server's meaning: where the next log backup starts) to the end, then
truncates the log below that point, never below what the mirroring session still needs
(DatabaseMirroring.log_floor). Every backup writes one log record of its own (a lone commit, as
SQL Server's backups write checkpoint records), so consecutive backup sets never share a LastLSN.

Failures report what SQL Server reports: the specific errors, then 3013 "… is terminating
abnormally." Backup files are media sets (media.py) in the instance's confined file system.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from ..fs import PathNotAllowed, ServerFileError, ServerFileNotFound
from . import media, statements as st, store, tables, txlog
from .context import HandlerContext
from .ddl_databases import DATABASE_SCOPED, OFFLINE, ONLINE, RESTORING, database_row, require_dbcreator
from .errors import SqlError, info, not_supported
from .media import BackupSet, FileEntry, Media, MediaError
from .results import Column, Event, ResultSet

RECOVERY_MODEL_NAMES = {1: "FULL", 2: "BULK-LOGGED", 3: "SIMPLE"}
RECOVERY_MODEL_CODES = {"FULL": 1, "BULK-LOGGED": 2, "SIMPLE": 3}
PAGE = 8192


class _Abort(Exception):
    """The statement fails with these errors, then 3013."""

    def __init__(self, *errors: SqlError):
        super().__init__(errors[0].text if errors else "")
        self.errors = errors


@contextmanager
def _terminating(events: list[Event], what: str, line: int) -> Iterator[None]:
    try:
        yield
    except _Abort as exc:
        for err in exc.errors:
            events.append(err.to_message(line))
        raise SqlError(3013, what) from None
    except SqlError as err:
        if err.number in (3013, 59001):
            raise
        events.append(err.to_message(line))
        raise SqlError(3013, what) from None


# -- media on disk ----------------------------------------------------------------------------------------
def _read_family(ctx: HandlerContext, path: str, missing_ok: bool = False) -> Optional[Media]:
    fs = ctx.instance.fs
    try:
        data = fs.read_bytes(path)
    except ServerFileNotFound:
        if missing_ok:
            return None
        raise _Abort(SqlError(3201, path, "2(The system cannot find the file specified.)"))
    except (PathNotAllowed, ServerFileError, OSError):
        raise _Abort(SqlError(3201, path, "5(Access is denied.)"))
    try:
        return media.decode(data)
    except MediaError as exc:
        raise _Abort(_media_error(exc, path)) from None


def _media_error(exc: MediaError, path: str) -> SqlError:
    if exc.kind == "truncated":
        return SqlError(3203, path, "38(Reached the end of the file.)")
    if exc.kind == "damaged":
        return SqlError(3189)
    return SqlError(3241, path)


def _read_media_set(ctx: HandlerContext, disks: list[str]) -> list[Media]:
    """Every family of one media set, in the order given; 3132/3231 when they do not make one."""
    families = [_read_family(ctx, d) for d in disks]
    first = families[0]
    assert first is not None
    for path, fam in zip(disks, families):
        assert fam is not None
        if fam.media_set_guid != first.media_set_guid or fam.family_count != first.family_count:
            raise _Abort(SqlError(3231, path, fam.family_count, len(disks)))
    if len({f.family_number for f in families if f}) < first.family_count:
        raise _Abort(SqlError(3132, first.family_count, len(disks)))
    return [f for f in families if f]


def _backup_set(families: list[Media], disks: list[str], position: int) -> tuple[BackupSet, str]:
    """The set at FILE = position (its payload from family 1) and the device that holds it."""
    for fam, path in zip(families, disks):
        if fam.family_number == 1:
            for s in fam.sets:
                if s.position == position:
                    return s, path
            raise _Abort(SqlError(4038, position, path))
    raise _Abort(SqlError(3132, families[0].family_count, len(disks)))


# -- BACKUP -----------------------------------------------------------------------------------------------
def _require_backup_permission(ctx: HandlerContext, dbid: int, name: str, what: str) -> None:
    if ctx.has_permission(None, "SERVER", "CONTROL SERVER"):
        return
    if ctx.query("SELECT 1 FROM t_databases d JOIN t_server_principals p ON p.sid = d.owner_sid "
                 "WHERE d.database_id=? AND p.principal_id=?", (dbid, ctx.login_id)):
        return
    raise SqlError(262, what, name)


def _stats(events: list[Event], options: dict, line: int) -> None:
    step = options.get("STATS")
    if step:
        step = max(1, min(100, int(step)))
        for pct in range(step, 101, step):
            events.append(info(3211, pct, line=line))


def _done(events: list[Event], what: str, pages: int, started: float, line: int) -> None:
    secs = max(time.monotonic() - started, 0.001)
    rate = pages * PAGE / 1048576 / secs
    events.append(info(3014, what, pages, f"{secs:.3f}", f"{rate:.3f}", line=line))


def _pages(size: int) -> int:
    return max(1, math.ceil(size / PAGE))


def _existing_media(ctx: HandlerContext, stmt: st.BackupDatabase) -> list[Optional[Media]]:
    """The media a NOINIT/INIT backup appends to or reuses (None: a new file)."""
    opts = stmt.options
    if opts.get("FORMAT"):
        return [None] * len(stmt.disks)
    out = []
    for path in stmt.disks:
        try:
            out.append(_read_family(ctx, path, missing_ok=True))
        except _Abort:
            if not opts.get("INIT"):
                raise
            out.append(None)     # INIT overwrites what it cannot read (lab inference)
    present = [(p, m) for p, m in zip(stmt.disks, out) if m is not None]
    guids = {m.media_set_guid for _, m in present}
    for path, m in present:
        if m.family_count != len(stmt.disks) or len(guids) > 1 or len(present) != len(stmt.disks):
            raise _Abort(SqlError(3231, path, m.family_count, len(stmt.disks)))
        want = opts.get("MEDIANAME")
        if want is not None and (m.name or "") != want:
            raise _Abort(SqlError(4037, want, m.name or "", path))
    return out


def backup_database(ctx: HandlerContext, stmt: st.BackupDatabase, events: list[Event]) -> None:
    what = f"BACKUP {stmt.kind}"
    started = time.monotonic()
    opts = stmt.options
    with _terminating(events, what, stmt.line):
        dbid, name, state, model = database_row(ctx, stmt.database)
        _require_backup_permission(ctx, dbid, name, what)
        is_log = stmt.kind == "LOG"
        copy_only = bool(opts.get("COPY_ONLY") or opts.get("NO_TRUNCATE"))
        if dbid == store.TEMPDB:
            raise SqlError(3147)
        if is_log and dbid == store.MASTER:
            raise SqlError(4212)
        if state == RESTORING:
            raise SqlError(927, name)
        if state == OFFLINE:
            raise SqlError(942, name)
        if is_log and model == 3:
            raise SqlError(4208, "BACKUP LOG")
        row = ctx.query("SELECT family_guid, recovery_fork_guid, database_backup_lsn, last_log_backup_lsn, "
                        "is_read_only, create_date, compatibility_level FROM t_databases WHERE database_id=?",
                        (dbid,))[0]
        family, fork, base_lsn, log_backup_lsn, read_only, created, compat = row
        if is_log and base_lsn is None:
            raise SqlError(4214)
        norecovery = is_log and bool(opts.get("NORECOVERY"))
        if norecovery:
            if ctx.database_id == dbid:
                raise SqlError(3102, what, name)
            if ctx.instance.database_in_use(dbid, ctx):
                raise SqlError(3101)
        existing = _existing_media(ctx, stmt)
        fresh = bool(opts.get("FORMAT") or opts.get("INIT"))
        keep = existing[0] if existing[0] is not None and not opts.get("FORMAT") else None
        guid = keep.media_set_guid if keep else store.new_guid()
        position = 1 if fresh or keep is None else len(keep.sets) + 1
        mirroring = ctx.instance.mirroring
        start_date = store.fmt_datetime(store.utcnow())
        files = [FileEntry(fid, "L" if ftype == 1 else "D", logical, physical, size)
                 for fid, ftype, logical, physical, size in ctx.query(
                     "SELECT file_id, type, name, physical_name, size_pages FROM t_database_files "
                     "WHERE database_id=? ORDER BY file_id", (dbid,))]
        user = ctx.query("SELECT name FROM t_server_principals WHERE principal_id=?", (ctx.login_id,))[0][0]
        mark = None
        with ctx.atomic() as conn:
            if not read_only:
                mark = txlog.append(conn, dbid, None, "commit")
            end = txlog.end_of_log(conn, dbid)
            if is_log:
                oldest = txlog.first_lsn(conn, dbid)
                first = log_backup_lsn if log_backup_lsn is not None else (oldest if oldest is not None else end + 1)
                raw = txlog.encode(txlog.read(conn, dbid, first - 1))
                checkpoint, db_base = end, base_lsn
            else:
                raw = media.encode_snapshot(_snapshot(conn, dbid))
                first = checkpoint = end
                db_base = base_lsn or 0
            compressed = bool(opts.get("COMPRESSION"))
            payload = _compress(raw) if compressed else raw
            bset = BackupSet(
                position=position, type="L" if is_log else "D", database_name=name, first_lsn=first,
                last_lsn=end + 1, checkpoint_lsn=checkpoint, database_backup_lsn=db_base or 0,
                family_guid=family, recovery_fork_guid=fork, backup_set_guid=store.new_guid(),
                recovery_model=RECOVERY_MODEL_NAMES.get(model, "FULL"), start_date=start_date,
                finish_date=store.fmt_datetime(store.utcnow()), server_name=_server_name(ctx),
                machine_name=_server_name(ctx).split("\\")[0], user_name=user, database_creation_date=created,
                compatibility_level=compat or 150, name=opts.get("NAME"), description=opts.get("DESCRIPTION"),
                copy_only=copy_only, compressed=compressed, checksums=bool(opts.get("CHECKSUM")),
                begins_log_chain=is_log and log_backup_lsn is None, force_offline=norecovery,
                is_read_only=bool(read_only), files=files, payload=payload, payload_size=len(raw))
            _write_media(ctx, stmt, existing, guid, bset, fresh)
            if is_log and not copy_only:
                floor = mirroring.log_floor(dbid) if mirroring is not None else None
                conn.execute("UPDATE t_databases SET last_log_backup_lsn=? WHERE database_id=?", (end + 1, dbid))
                txlog.truncate_before(conn, dbid, end + 1 if floor is None else min(end + 1, floor))
            if not is_log and not copy_only and model != 3:
                conn.execute("UPDATE t_databases SET database_backup_lsn=? WHERE database_id=?", (end, dbid))
            elif not is_log and (model == 3 or base_lsn is None):
                # no log chain yet: the backup's own record goes as any commit's would (session._close_log)
                if mirroring is None or not mirroring.keeps_log(dbid):
                    txlog.truncate_before(conn, dbid, end + 1)
            if norecovery:
                conn.execute("UPDATE t_databases SET state=? WHERE database_id=?", (RESTORING, dbid))
            _record_backup(conn, bset, guid, stmt.disks, opts)
        if mark is not None and mirroring is not None:
            mirroring.committed(dbid, mark)
    _stats(events, opts, stmt.line)
    total = 0
    data_pages = _pages(len(raw)) + 7
    for f in files:
        if is_log:
            pages = _pages(len(raw)) if f.type == "L" else None
        else:
            pages = (data_pages if f.file_id == 1 else 8) if f.type == "D" else 2
        if pages is not None:
            total += pages
            events.append(info(4035, pages, name, f.logical_name, position, line=stmt.line))
    _done(events, what, total, started, stmt.line)
    ctx.emit_done(events)


def _server_name(ctx: HandlerContext) -> str:
    return str(getattr(ctx.instance, "name", "") or "")


def _compress(data: bytes) -> bytes:
    import zlib
    return zlib.compress(data, 6)


def _snapshot(conn, dbid: int) -> dict:
    """A database's tables as data: definitions, rows with their rids, identity values."""
    out = []
    for t in tables.load(conn, dbid).values():
        ident = conn.execute("SELECT identity_value FROM t_tables WHERE database_id=? AND object_id=?",
                             (dbid, t.object_id)).fetchone()[0]
        out.append({"definition": t.definition(), "rows": [[rid, values] for rid, values in tables.rows(conn, t)],
                    "identity": ident})
    row = conn.execute("SELECT next_object_id, user_access, is_read_only FROM t_databases WHERE database_id=?",
                       (dbid,)).fetchone()
    return {"tables": out, "next_object_id": row[0], "user_access": row[1], "is_read_only": row[2]}


def _write_media(ctx: HandlerContext, stmt: st.BackupDatabase, existing: list[Optional[Media]], guid: str,
                 bset: BackupSet, fresh: bool) -> None:
    opts = stmt.options
    count = len(stmt.disks)
    for number, (path, old) in enumerate(zip(stmt.disks, existing), start=1):
        if old is not None and not opts.get("FORMAT"):
            fam = Media(old.media_set_guid, old.family_count, old.family_number, old.name, old.description,
                        [] if fresh else list(old.sets))
        else:
            fam = Media(guid, count, number, opts.get("MEDIANAME"), opts.get("MEDIADESCRIPTION"))
        # a striped set's data travels in family 1; the others carry its header (lab simplification)
        part = bset if fam.family_number == 1 else BackupSet(**{**bset.__dict__, "payload": b""})
        fam.sets.append(part)
        try:
            ctx.instance.fs.write_replace(path, media.encode(fam))
        except (PathNotAllowed, ServerFileError, OSError):
            raise _Abort(SqlError(3201, path, "5(Access is denied.)"))


def _record_backup(conn, bset: BackupSet, guid: str, disks: list[str], opts: dict) -> int:
    """msdb history: backupmediaset/backupmediafamily/backupset rows; the backup_set_id."""
    row = conn.execute("SELECT media_set_id FROM t_backupmediaset WHERE media_uuid=?", (guid,)).fetchone()
    if row is None:
        cur = conn.execute("INSERT INTO t_backupmediaset (media_uuid, media_family_count, name, description, "
                           "is_compressed) VALUES (?, ?, ?, ?, ?)",
                           (guid, len(disks), opts.get("MEDIANAME"), opts.get("MEDIADESCRIPTION"),
                            int(bset.compressed)))
        media_set_id = int(cur.lastrowid)
        for n, path in enumerate(disks, start=1):
            conn.execute("INSERT INTO t_backupmediafamily VALUES (?, ?, ?, ?)",
                         (media_set_id, n, store.new_guid(), path))
    else:
        media_set_id = int(row[0])
    cur = conn.execute(
        "INSERT INTO t_backupset (backup_set_uuid, media_set_id, position, name, description, user_name, "
        "server_name, machine_name, database_name, database_creation_date, type, backup_start_date, "
        "backup_finish_date, first_lsn, last_lsn, checkpoint_lsn, database_backup_lsn, is_copy_only, "
        "recovery_model, family_guid, recovery_fork_guid, backup_size, compressed_backup_size, "
        "has_backup_checksums, compatibility_level, begins_log_chain, is_force_offline, is_readonly) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (bset.backup_set_guid, media_set_id, bset.position, bset.name, bset.description, bset.user_name,
         bset.server_name, bset.machine_name, bset.database_name, bset.database_creation_date, bset.type,
         bset.start_date, bset.finish_date, bset.first_lsn, bset.last_lsn, bset.checkpoint_lsn,
         bset.database_backup_lsn, int(bset.copy_only), bset.recovery_model, bset.family_guid,
         bset.recovery_fork_guid, _backup_size(bset), len(bset.payload) + 1024, int(bset.checksums),
         bset.compatibility_level, int(bset.begins_log_chain), int(bset.force_offline), int(bset.is_read_only)))
    return int(cur.lastrowid)


def _backup_size(bset: BackupSet) -> int:
    return bset.payload_size + 1024


# -- RESTORE ----------------------------------------------------------------------------------------------
def restore(ctx: HandlerContext, stmt: st.RestoreDatabase, events: list[Event]) -> None:
    what = f"RESTORE {stmt.kind}"
    with _terminating(events, what, stmt.line):
        if stmt.kind in ("HEADERONLY", "FILELISTONLY", "VERIFYONLY"):
            count = _restore_info(ctx, stmt, events)
            ctx.emit_done(events, count)
            return
        if stmt.kind == "DATABASE" and not stmt.disks:
            _recover_only(ctx, stmt, events)
        else:
            started = time.monotonic()
            if not (ctx.has_permission(None, "SERVER", "CONTROL SERVER") or _is_dbcreator(ctx)):
                raise SqlError(3110, stmt.database)
            if (stmt.database or "").lower() == "tempdb":
                raise SqlError(3147)
            if (stmt.database or "").lower() == "master":
                raise not_supported("RESTORE DATABASE master")
            families = _read_media_set(ctx, stmt.disks)
            bset, path = _backup_set(families, stmt.disks, int(stmt.options.get("FILE", 1)))
            if stmt.kind == "DATABASE":
                _restore_database(ctx, stmt, bset, path, events, started)
            else:
                _restore_log(ctx, stmt, bset, path, events, started)
    ctx.emit_done(events)


def _is_dbcreator(ctx: HandlerContext) -> bool:
    try:
        require_dbcreator(ctx)
        return True
    except SqlError:
        return False


def _database(ctx: HandlerContext, name: str) -> Optional[tuple]:
    rows = ctx.query("SELECT database_id, name, state, recovery_model, family_guid, end_lsn, database_backup_lsn, "
                     "last_log_backup_lsn FROM t_databases WHERE name=?", (name,))
    return rows[0] if rows else None


def _restore_database(ctx: HandlerContext, stmt: st.RestoreDatabase, bset: BackupSet, path: str,
                      events: list[Event], started: float) -> None:
    opts = stmt.options
    name = stmt.database
    assert name is not None
    if bset.type != "D":
        raise _Abort(SqlError(3135, path, "BACKUP LOG"))
    replace = bool(opts.get("REPLACE"))
    norecovery = bool(opts.get("NORECOVERY"))
    old = _database(ctx, name)
    if old is not None:
        dbid, real, state, model, family, end, base, log_backup = old
        if dbid <= store.MSDB:
            raise not_supported(f"RESTORE DATABASE {real} (a system database)")
        if ctx.instance.mirroring is not None:
            ctx.instance.mirroring.prevents(dbid, "RESTORE")
        if family != bset.family_guid and not replace:
            raise _Abort(SqlError(3154, real))
        if (not replace and state == ONLINE and model != 3 and base is not None
                and (log_backup is None or (end or 0) + 1 > log_backup)):
            raise _Abort(SqlError(3159, real))
        if ctx.database_id == dbid:
            raise _Abort(SqlError(3102, "RESTORE", real))
        if ctx.instance.database_in_use(dbid, ctx):
            raise _Abort(SqlError(3101))
    moves: dict[str, str] = {}
    for logical, physical in stmt.moves:
        if logical.lower() in moves:
            raise _Abort(SqlError(4353, logical))
        if not any(f.logical_name.lower() == logical.lower() for f in bset.files):
            raise _Abort(SqlError(3234, logical, bset.database_name))
        moves[logical.lower()] = physical
    targets = [(f, moves.get(f.logical_name.lower(), f.physical_name)) for f in bset.files]
    clashes: list[SqlError] = []
    for f, physical in targets:
        owner = ctx.query("SELECT d.name FROM t_database_files f JOIN t_databases d ON d.database_id = f.database_id "
                          "WHERE f.physical_name = ? COLLATE NOCASE AND f.database_id <> ?",
                          (physical, old[0] if old else -1))
        if owner:
            clashes += [SqlError(1834, physical, owner[0][0], state=1), SqlError(3156, f.logical_name, physical, state=4)]
    if clashes:
        raise _Abort(*clashes, SqlError(3119))
    try:
        snapshot = media.decode_snapshot(bset.data())
    except MediaError as exc:
        raise _Abort(_media_error(exc, path)) from None
    owner_sid = ctx.query("SELECT sid FROM t_server_principals WHERE principal_id=?", (ctx.login_id,))[0][0]
    now = store.fmt_datetime(store.utcnow())
    end = bset.last_lsn - 1
    with ctx.atomic() as conn:
        if old is not None:
            tables.drop_database(conn, old[0])
            for table in DATABASE_SCOPED:
                conn.execute(f"DELETE FROM {table} WHERE database_id=?", (old[0],))
            conn.execute("DELETE FROM t_databases WHERE database_id=?", (old[0],))
        used = {r[0] for r in conn.execute("SELECT database_id FROM t_databases")}
        dbid = next(i for i in range(5, 32768) if i not in used)
        conn.execute(
            "INSERT INTO t_databases (database_id, name, owner_sid, create_date, compatibility_level, recovery_model, "
            "state, user_access, is_read_only, family_guid, recovery_fork_guid, end_lsn, last_log_backup_lsn, "
            "database_backup_lsn, next_object_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dbid, name, owner_sid, now, bset.compatibility_level, RECOVERY_MODEL_CODES.get(bset.recovery_model, 1),
             RESTORING if norecovery else ONLINE, int(snapshot.get("user_access") or 0),
             int(snapshot.get("is_read_only") or 0), bset.family_guid, bset.recovery_fork_guid, end,
             bset.last_lsn, bset.checkpoint_lsn, snapshot.get("next_object_id") or 901578250))
        for f, physical in targets:
            conn.execute("INSERT INTO t_database_files VALUES (?, ?, ?, ?, ?, ?)",
                         (dbid, f.file_id, 1 if f.type == "L" else 0, f.logical_name, physical, f.size_pages))
        store.seed_database_principals(conn, dbid, now, owner_sid)
        try:
            for item in snapshot["tables"]:
                t = tables.TableDef.from_definition(dbid, item["definition"])
                tables.create(conn, t)
                for rid, values in item["rows"]:
                    tables.insert_row(conn, t, values, rid=int(rid))
                if item.get("identity") is not None:
                    tables.note_identity(conn, t, int(item["identity"]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise _Abort(SqlError(3189)) from None
        _record_restore(ctx, conn, bset, path, name, replace, not norecovery, len(stmt.disks))
        ctx.schema_changed()
    ctx.instance.errorlog.write(
        f"spid{ctx.spid}", f"Database was restored: Database: {name}, creation date(time): "
        f"{bset.database_creation_date}, first LSN: {bset.first_lsn}, last LSN: {bset.last_lsn}, number of dump "
        f"devices: {len(stmt.disks)}, device information: (FILE={bset.position}, TYPE=DISK: {{'{path}'}}). "
        "Informational message. No user action required.")
    _stats(events, opts, stmt.line)
    data_pages = _pages(bset.payload_size) + 7
    total = 0
    for f, _ in targets:
        pages = (data_pages if f.file_id == 1 else 8) if f.type == "D" else 2
        total += pages
        events.append(info(4035, pages, name, f.logical_name, bset.position, line=stmt.line))
    _done(events, "RESTORE DATABASE", total, started, stmt.line)


def _restore_log(ctx: HandlerContext, stmt: st.RestoreDatabase, bset: BackupSet, path: str,
                 events: list[Event], started: float) -> None:
    name = stmt.database
    assert name is not None
    if bset.type != "L":
        raise _Abort(SqlError(3135, path, "BACKUP DATABASE"))
    db = _database(ctx, name)
    if db is None:
        raise _Abort(SqlError(3118, name))
    dbid, real, state, model, family, end, base, log_backup = db
    if ctx.instance.mirroring is not None:
        ctx.instance.mirroring.prevents(dbid, "RESTORE")
    if state != RESTORING:
        raise _Abort(SqlError(3117))
    if family != bset.family_guid:
        raise _Abort(SqlError(3154, real))
    redo_point = (end or 0) + 1
    if bset.first_lsn > redo_point:
        raise _Abort(SqlError(4305, bset.first_lsn, redo_point))
    if bset.last_lsn <= redo_point:
        raise _Abort(SqlError(4326, bset.last_lsn, redo_point))
    try:
        records = [r for r in txlog.decode(bset.data()) if r.lsn > (end or 0)]
    except (txlog.LogFormatError, MediaError):
        raise _Abort(SqlError(3189)) from None
    recovery = not stmt.options.get("NORECOVERY")
    with ctx.atomic() as conn:
        try:
            txlog.redo(conn, dbid, records)
        except (txlog.LogFormatError, KeyError, TypeError, ValueError):
            raise _Abort(SqlError(3189)) from None
        conn.execute("UPDATE t_databases SET end_lsn=?, last_log_backup_lsn=?, state=? WHERE database_id=?",
                     (bset.last_lsn - 1, bset.last_lsn, ONLINE if recovery else RESTORING, dbid))
        _record_restore(ctx, conn, bset, path, real, False, recovery, len(stmt.disks))
        ctx.schema_changed()
    _stats(events, stmt.options, stmt.line)
    files = ctx.query("SELECT name, type FROM t_database_files WHERE database_id=? ORDER BY file_id", (dbid,))
    total = 0
    for logical, ftype in files:
        pages = _pages(bset.payload_size) if ftype == 1 else 0
        total += pages
        events.append(info(4035, pages, real, logical, bset.position, line=stmt.line))
    _done(events, "RESTORE LOG", total, started, stmt.line)


def _recover_only(ctx: HandlerContext, stmt: st.RestoreDatabase, events: list[Event]) -> None:
    """RESTORE DATABASE db WITH RECOVERY: bring a RESTORING database online."""
    started = time.monotonic()
    db = _database(ctx, stmt.database or "")
    if db is None:
        raise SqlError(911, stmt.database)
    dbid, real, state = db[0], db[1], db[2]
    if ctx.instance.mirroring is not None:
        ctx.instance.mirroring.prevents(dbid, "RESTORE")
    if state != RESTORING:
        raise _Abort(SqlError(3153))
    with ctx.atomic() as conn:
        conn.execute("UPDATE t_databases SET state=? WHERE database_id=?", (ONLINE, dbid))
    _done(events, "RESTORE DATABASE", 0, started, stmt.line)


def _record_restore(ctx: HandlerContext, conn, bset: BackupSet, path: str, name: str, replace: bool,
                    recovery: bool, devices: int) -> None:
    """msdb history: the set read (backupset, as SQL Server records it) and a restorehistory row."""
    guid = store.new_guid()
    backup_set_id = _record_backup(conn, bset, guid, [path], {})
    user = conn.execute("SELECT name FROM t_server_principals WHERE principal_id=?", (ctx.login_id,)).fetchone()[0]
    conn.execute("INSERT INTO t_restorehistory (restore_date, destination_database_name, user_name, backup_set_id, "
                 "restore_type, replace, recovery, device_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (store.fmt_datetime(store.utcnow()), name, user, backup_set_id, bset.type, int(replace),
                  int(recovery), devices))


# -- RESTORE HEADERONLY / FILELISTONLY / VERIFYONLY -------------------------------------------------------
HEADER_COLUMNS = (
    ("BackupName", "nvarchar(128)"), ("BackupDescription", "nvarchar(255)"), ("BackupType", "smallint"),
    ("ExpirationDate", "datetime"), ("Compressed", "bit"), ("Position", "smallint"), ("DeviceType", "tinyint"),
    ("UserName", "nvarchar(128)"), ("ServerName", "nvarchar(128)"), ("DatabaseName", "nvarchar(128)"),
    ("DatabaseVersion", "int"), ("DatabaseCreationDate", "datetime"), ("BackupSize", "numeric(20,0)"),
    ("FirstLSN", "numeric(25,0)"), ("LastLSN", "numeric(25,0)"), ("CheckpointLSN", "numeric(25,0)"),
    ("DatabaseBackupLSN", "numeric(25,0)"), ("BackupStartDate", "datetime"), ("BackupFinishDate", "datetime"),
    ("SortOrder", "smallint"), ("CodePage", "smallint"), ("UnicodeLocaleId", "int"),
    ("UnicodeComparisonStyle", "int"), ("CompatibilityLevel", "tinyint"), ("SoftwareVendorId", "int"),
    ("SoftwareVersionMajor", "int"), ("SoftwareVersionMinor", "int"), ("SoftwareVersionBuild", "int"),
    ("MachineName", "nvarchar(128)"), ("Flags", "int"), ("BindingID", "uniqueidentifier"),
    ("RecoveryForkID", "uniqueidentifier"), ("Collation", "nvarchar(128)"), ("FamilyGUID", "uniqueidentifier"),
    ("HasBulkLoggedData", "bit"), ("IsSnapshot", "bit"), ("IsReadOnly", "bit"), ("IsSingleUser", "bit"),
    ("HasBackupChecksums", "bit"), ("IsDamaged", "bit"), ("BeginsLogChain", "bit"),
    ("HasIncompleteMetaData", "bit"), ("IsForceOffline", "bit"), ("IsCopyOnly", "bit"),
    ("FirstRecoveryForkID", "uniqueidentifier"), ("ForkPointLSN", "numeric(25,0)"),
    ("RecoveryModel", "nvarchar(60)"), ("DifferentialBaseLSN", "numeric(25,0)"),
    ("DifferentialBaseGUID", "uniqueidentifier"), ("BackupTypeDescription", "nvarchar(60)"),
    ("BackupSetGUID", "uniqueidentifier"), ("CompressedBackupSize", "bigint"), ("Containment", "tinyint"),
    ("KeyAlgorithm", "nvarchar(32)"), ("EncryptorThumbprint", "varbinary(20)"), ("EncryptorType", "nvarchar(32)"))
FILELIST_COLUMNS = (
    ("LogicalName", "nvarchar(128)"), ("PhysicalName", "nvarchar(260)"), ("Type", "char(1)"),
    ("FileGroupName", "nvarchar(128)"), ("Size", "numeric(20,0)"), ("MaxSize", "numeric(20,0)"),
    ("FileId", "bigint"), ("CreateLSN", "numeric(25,0)"), ("DropLSN", "numeric(25,0)"),
    ("UniqueId", "uniqueidentifier"), ("ReadOnlyLSN", "numeric(25,0)"), ("ReadWriteLSN", "numeric(25,0)"),
    ("BackupSizeInBytes", "bigint"), ("SourceBlockSize", "int"), ("FileGroupId", "int"),
    ("LogGroupGUID", "uniqueidentifier"), ("DifferentialBaseLSN", "numeric(25,0)"),
    ("DifferentialBaseGUID", "uniqueidentifier"), ("IsReadOnly", "bit"), ("IsPresent", "bit"),
    ("TDEThumbprint", "varbinary(32)"), ("SnapshotUrl", "nvarchar(360)"))


def _columns(spec) -> list[Column]:
    return [Column(n, t) for n, t in spec]


def _uuid(text: Optional[str]):
    import uuid
    return uuid.UUID(text) if text else None


def _datetime(text: Optional[str]):
    from datetime import datetime
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f") if text else None


def _header_row(s: BackupSet) -> tuple:
    from decimal import Decimal
    log = s.type == "L"
    size = s.payload_size + 1024
    flags = (16 if s.checksums else 0) | (4 if s.is_read_only else 0) | (256 if s.force_offline else 0)
    return (s.name, s.description, 2 if log else 1, None, s.compressed, s.position, 2, s.user_name, s.server_name,
            s.database_name, 904, _datetime(s.database_creation_date), Decimal(size), Decimal(s.first_lsn),
            Decimal(s.last_lsn), Decimal(s.checkpoint_lsn), Decimal(s.database_backup_lsn),
            _datetime(s.start_date), _datetime(s.finish_date), 52, 0, 1033, 196609, s.compatibility_level, 4608,
            15, 0, 2000, s.machine_name, flags, _uuid(s.family_guid), _uuid(s.recovery_fork_guid),
            "SQL_Latin1_General_CP1_CI_AS", _uuid(s.family_guid), False, False, s.is_read_only, False,
            s.checksums, False, s.begins_log_chain, False, s.force_offline, s.copy_only,
            _uuid(s.recovery_fork_guid), None, s.recovery_model, None, None,
            "Transaction Log" if log else "Database", _uuid(s.backup_set_guid),
            len(s.payload) + 1024 if s.compressed else size, 0, None, None, None)


def _restore_info(ctx: HandlerContext, stmt: st.RestoreDatabase, events: list[Event]) -> Optional[int]:
    """Result set (HEADERONLY, FILELISTONLY) or message (VERIFYONLY); the row count."""
    if not (ctx.has_permission(None, "SERVER", "CONTROL SERVER") or _is_dbcreator(ctx)):
        raise SqlError(262, "CREATE DATABASE", ctx.database_name(ctx.database_id))
    families = _read_media_set(ctx, stmt.disks)
    first = next(f for f in families if f.family_number == 1) if any(
        f.family_number == 1 for f in families) else families[0]
    wanted = stmt.options.get("FILE")
    if stmt.kind == "HEADERONLY":
        sets = [s for s in first.sets if wanted is None or s.position == wanted]
        rows = [_header_row(s) for s in sets]
        events.append(ResultSet(_columns(HEADER_COLUMNS), rows))
        return len(rows)
    bset, path = _backup_set(families, stmt.disks, int(wanted or 1))
    if stmt.kind == "VERIFYONLY":
        try:
            data = bset.data()
            if bset.type == "L":
                txlog.decode(data)
            else:
                media.decode_snapshot(data)
        except (MediaError, txlog.LogFormatError):
            raise _Abort(SqlError(3189)) from None
        events.append(info(3262, bset.position, line=stmt.line))
        return None
    from decimal import Decimal
    rows = []
    for f in bset.files:
        rows.append((f.logical_name, f.physical_name, f.type, "PRIMARY" if f.type == "D" else None,
                     Decimal(f.size_pages * PAGE), Decimal(35184372080640 if f.type == "D" else 2199023255552),
                     f.file_id, Decimal(0), Decimal(0), _uuid(bset.family_guid), Decimal(0), Decimal(0),
                     (bset.payload_size if f.file_id == 1 else 0) if bset.type == "D" else 0, 512,
                     1 if f.type == "D" else 0, None, None, None, False, True, None, None))
    events.append(ResultSet(_columns(FILELIST_COLUMNS), rows))
    return len(rows)


HANDLERS = {st.BackupDatabase: backup_database, st.RestoreDatabase: restore}
