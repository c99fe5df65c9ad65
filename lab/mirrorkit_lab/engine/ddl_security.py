"""Logins, users, server roles, GRANT/REVOKE/DENY and ALTER AUTHORIZATION.

docs: t-sql/statements/create-login-transact-sql.md, alter-login-…, drop-login-…,
create-user-transact-sql.md, drop-user-…, grant-endpoint-permissions-transact-sql.md,
revoke-endpoint-permissions-…, deny-endpoint-permissions-…, alter-authorization-…,
alter-server-role-transact-sql.md.
"""
from __future__ import annotations

import os

from . import statements as st, store
from .context import HandlerContext
from .errors import SqlError
from .passwords import check_policy, hash_password
from .permissions import ENDPOINT_PERMISSIONS, SERVER_PERMISSIONS
from .results import Event


def _now() -> str:
    return store.fmt_datetime(store.utcnow())


def _login(conn, name: str):
    return conn.execute("SELECT principal_id, type, sid FROM t_server_principals WHERE name=?",
                        (name,)).fetchone()


def _existing_login(conn, name: str, verb: str):
    row = _login(conn, name)
    if row is None or row[1] == "R":
        raise SqlError(15151, verb, "login", name)
    return row


def create_login(s: HandlerContext, stmt: st.CreateLogin, events: list[Event]) -> None:
    s.require_sysadmin()
    with s.atomic(events) as conn:
        if _login(conn, stmt.name):
            raise SqlError(15025, stmt.name)
        now = _now()
        policy = True if stmt.check_policy is None else stmt.check_policy
        expiration = bool(stmt.check_expiration)
        if stmt.source == "password":
            if stmt.must_change and not expiration:
                raise SqlError(15099)
            if expiration and not policy:
                raise SqlError(15122)
            if policy:
                check_policy(stmt.password, stmt.name)
            sid = stmt.sid or os.urandom(16)
            if conn.execute("SELECT 1 FROM t_server_principals WHERE sid=?", (sid,)).fetchone():
                raise SqlError(15433)
            ptype, pw_hash = "S", hash_password(stmt.password)
        elif stmt.source == "windows":
            if "\\" not in stmt.name:
                raise SqlError(15407, stmt.name)
            sid = os.urandom(28)
            ptype, pw_hash, policy, expiration = "U", None, None, None
        else:
            row = conn.execute("SELECT sid FROM t_certificates WHERE database_id=? AND name=?",
                               (store.MASTER, stmt.certificate)).fetchone()
            if row is None:
                raise SqlError(15151, "find", "certificate", stmt.certificate)
            sid = row[0]
            ptype, pw_hash, policy, expiration = "C", None, None, None
        default_db = stmt.default_database or "master"
        if not conn.execute("SELECT 1 FROM t_databases WHERE name=?", (default_db,)).fetchone():
            raise SqlError(15010, default_db)
        next_id = conn.execute("SELECT MAX(principal_id) FROM t_server_principals").fetchone()[0]
        pid = max(next_id + 1, store.FIRST_LOGIN_ID)
        conn.execute(
            "INSERT INTO t_server_principals (principal_id, name, sid, type, is_disabled, create_date, "
            "modify_date, default_database_name, default_language_name, password_hash, is_policy_checked, "
            "is_expiration_checked) VALUES (?, ?, ?, ?, 0, ?, ?, ?, 'us_english', ?, ?, ?)",
            (pid, stmt.name, sid, ptype, now, now, default_db, pw_hash,
             None if policy is None else int(policy), None if expiration is None else int(expiration)))
        # "Creating a login automatically enables the new login and grants CONNECT SQL"
        conn.execute("INSERT INTO t_server_permissions VALUES (100, 0, 0, ?, ?, 'COSQ', 'CONNECT SQL', 'G')",
                     (pid, s.login_id))
    s.emit_done(events)


def alter_login(s: HandlerContext, stmt: st.AlterLogin, events: list[Event]) -> None:
    s.require_sysadmin()
    with s.atomic(events) as conn:
        row = _existing_login(conn, stmt.name, "alter")
        pid = row[0]
        now = _now()
        if stmt.enable is not None:
            conn.execute("UPDATE t_server_principals SET is_disabled=?, modify_date=? WHERE principal_id=?",
                         (0 if stmt.enable else 1, now, pid))
        policy = conn.execute("SELECT is_policy_checked, is_expiration_checked FROM t_server_principals "
                              "WHERE principal_id=?", (pid,)).fetchone()
        check = bool(policy[0]) if stmt.check_policy is None else stmt.check_policy
        if stmt.check_policy is not None or stmt.check_expiration is not None:
            expiration = bool(policy[1]) if stmt.check_expiration is None else stmt.check_expiration
            if expiration and not check:
                raise SqlError(15122)
            conn.execute("UPDATE t_server_principals SET is_policy_checked=?, is_expiration_checked=?, "
                         "modify_date=? WHERE principal_id=?", (int(check), int(expiration), now, pid))
        if stmt.password is not None:
            if row[1] != "S":
                raise SqlError(15151, "alter", "login", stmt.name)
            if check:
                check_policy(stmt.password, stmt.name)
            conn.execute("UPDATE t_server_principals SET password_hash=?, modify_date=? WHERE principal_id=?",
                         (hash_password(stmt.password), now, pid))
        if stmt.default_database is not None:
            if not conn.execute("SELECT 1 FROM t_databases WHERE name=?", (stmt.default_database,)).fetchone():
                raise SqlError(15010, stmt.default_database)
            conn.execute("UPDATE t_server_principals SET default_database_name=? WHERE principal_id=?",
                         (stmt.default_database, pid))
        if stmt.new_name is not None:
            if _login(conn, stmt.new_name):
                raise SqlError(15025, stmt.new_name)
            conn.execute("UPDATE t_server_principals SET name=?, modify_date=? WHERE principal_id=?",
                         (stmt.new_name, now, pid))
    s.emit_done(events)


def drop_login(s: HandlerContext, stmt: st.DropLogin, events: list[Event]) -> None:
    s.require_sysadmin()
    with s.atomic(events) as conn:
        row = _existing_login(conn, stmt.name, "drop")
        pid = row[0]
        if pid == store.SA_ID:
            raise SqlError(15405, stmt.name)
        if s.instance.login_in_use(pid):
            raise SqlError(15434, stmt.name)
        if conn.execute("SELECT 1 FROM t_endpoints WHERE principal_id=?", (pid,)).fetchone():
            raise SqlError(15141, "endpoint")
        conn.execute("DELETE FROM t_server_permissions WHERE grantee_principal_id=?", (pid,))
        conn.execute("DELETE FROM t_server_role_members WHERE member_principal_id=?", (pid,))
        conn.execute("DELETE FROM t_server_principals WHERE principal_id=?", (pid,))
    s.emit_done(events)


def create_user(s: HandlerContext, stmt: st.CreateUser, events: list[Event]) -> None:
    s.require_sysadmin()
    db = s.database_id
    with s.atomic(events) as conn:
        if conn.execute("SELECT 1 FROM t_database_principals WHERE database_id=? AND name=?",
                        (db, stmt.name)).fetchone():
            raise SqlError(15023, stmt.name)
        auth, ptype = 1, "S"
        if stmt.without_login:
            sid, auth = b"\x01\x05\x00\x00\x00\x00\x00\x09\x03\x00\x00\x00" + os.urandom(16), 0
        elif stmt.certificate is not None:
            row = conn.execute("SELECT sid FROM t_certificates WHERE database_id=? AND name=?",
                               (db, stmt.certificate)).fetchone()
            if row is None:
                raise SqlError(15151, "find", "certificate", stmt.certificate)
            sid, auth, ptype = row[0], 0, "C"
        else:
            login_name = stmt.login or stmt.name
            row = _login(conn, login_name)
            if row is None or row[1] == "R":
                raise SqlError(15007, login_name)
            sid = row[2]
            ptype = {"U": "U", "G": "G", "C": "C"}.get(row[1], "S")
            if sid == b"\x01" or conn.execute("SELECT 1 FROM t_database_principals WHERE database_id=? AND sid=?",
                                              (db, sid)).fetchone():
                raise SqlError(15063)
        next_id = conn.execute("SELECT MAX(principal_id) FROM t_database_principals WHERE database_id=? "
                               "AND principal_id < 16384", (db,)).fetchone()[0]
        pid = max(next_id + 1, 5)
        now = _now()
        conn.execute(
            "INSERT INTO t_database_principals (database_id, principal_id, name, type, default_schema_name, "
            "create_date, modify_date, owning_principal_id, sid, is_fixed_role, authentication_type) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, 0, ?)",
            (db, pid, stmt.name, ptype, None if ptype == "C" else (stmt.default_schema or "dbo"), now, now,
             sid, auth))
    s.emit_done(events)


def drop_user(s: HandlerContext, stmt: st.DropUser, events: list[Event]) -> None:
    s.require_sysadmin()
    db = s.database_id
    with s.atomic(events) as conn:
        row = conn.execute("SELECT principal_id, type FROM t_database_principals WHERE database_id=? AND name=?",
                           (db, stmt.name)).fetchone()
        if row is None or row[1] == "R":
            raise SqlError(15151, "drop", "user", stmt.name)
        if row[0] < 5:
            raise SqlError(15150, stmt.name)
        if conn.execute("SELECT 1 FROM t_certificates WHERE database_id=? AND principal_id=?",
                        (db, row[0])).fetchone():
            raise SqlError(15138, "certificate")
        conn.execute("DELETE FROM t_database_principals WHERE database_id=? AND principal_id=?", (db, row[0]))
    s.emit_done(events)


def permission(s: HandlerContext, stmt: st.PermissionStatement, events: list[Event]) -> None:
    if s.database_id != store.MASTER:
        raise SqlError(4621)
    with s.atomic(events) as conn:
        if stmt.securable_class == "ENDPOINT":
            row = conn.execute("SELECT endpoint_id FROM t_endpoints WHERE name=?", (stmt.securable,)).fetchone()
            if row is None:
                raise SqlError(15151, "find", "endpoint", stmt.securable)
            klass, major, table = 105, row[0], ENDPOINT_PERMISSIONS
            if not s.has_permission(stmt.securable, "ENDPOINT", "CONTROL") and \
                    not s.has_permission(None, "SERVER", "ALTER ANY ENDPOINT"):
                raise SqlError(15247)
        else:
            klass, major, table = 100, 0, SERVER_PERMISSIONS
            s.require_sysadmin()
        codes = []
        for perm in stmt.permissions:
            code = table.get(perm)
            if code is None:
                raise SqlError(102, perm.split()[0], abort_batch=True)
            codes.append((perm, code))
        grantees = []
        for name in stmt.principals:
            row = _login(conn, name)
            if row is None:
                if conn.execute("SELECT 1 FROM t_database_principals WHERE database_id=? AND name=?",
                                (s.database_id, name)).fetchone():
                    raise SqlError(4622)
                raise SqlError(15151, "find", "login", name)
            grantees.append(row[0])
        for pid in grantees:
            for perm, code in codes:
                key = (klass, major, 0, pid, code)
                existing = conn.execute(
                    "SELECT state FROM t_server_permissions WHERE class=? AND major_id=? AND minor_id=? AND "
                    "grantee_principal_id=? AND type=?", key).fetchone()
                if stmt.action == "REVOKE":
                    if stmt.grant_option_for:
                        if existing and existing[0] == "W":
                            conn.execute("UPDATE t_server_permissions SET state='G' WHERE class=? AND major_id=? "
                                         "AND minor_id=? AND grantee_principal_id=? AND type=?", key)
                    else:
                        conn.execute("DELETE FROM t_server_permissions WHERE class=? AND major_id=? AND "
                                     "minor_id=? AND grantee_principal_id=? AND type=?", key)
                    continue
                state = "D" if stmt.action == "DENY" else ("W" if stmt.with_grant_option else "G")
                conn.execute("DELETE FROM t_server_permissions WHERE class=? AND major_id=? AND minor_id=? "
                             "AND grantee_principal_id=? AND type=?", key)
                conn.execute("INSERT INTO t_server_permissions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (*key[:4], s.login_id, code, perm, state))
    s.emit_done(events)


def alter_authorization(s: HandlerContext, stmt: st.AlterAuthorization, events: list[Event]) -> None:
    s.require_sysadmin()
    with s.atomic(events) as conn:
        if stmt.securable_class == "CERTIFICATE":
            db = s.database_id
            if not conn.execute("SELECT 1 FROM t_certificates WHERE database_id=? AND name=?",
                                (db, stmt.securable)).fetchone():
                raise SqlError(15151, "find", "certificate", stmt.securable)
            row = conn.execute("SELECT principal_id, type FROM t_database_principals WHERE database_id=? "
                               "AND name=?", (db, stmt.principal)).fetchone()
            if row is None or row[1] in ("R", "G"):
                raise SqlError(15151, "find", "user", stmt.principal)
            conn.execute("UPDATE t_certificates SET principal_id=? WHERE database_id=? AND name=?",
                         (row[0], db, stmt.securable))
        else:
            if not conn.execute("SELECT 1 FROM t_endpoints WHERE name=?", (stmt.securable,)).fetchone():
                raise SqlError(15151, "find", "endpoint", stmt.securable)
            row = _login(conn, stmt.principal)
            if row is None or row[1] == "R":
                raise SqlError(15151, "find", "login", stmt.principal)
            conn.execute("UPDATE t_endpoints SET principal_id=? WHERE name=?", (row[0], stmt.securable))
    s.emit_done(events)


def alter_server_role(s: HandlerContext, stmt: st.AlterServerRole, events: list[Event]) -> None:
    s.require_sysadmin()
    with s.atomic(events) as conn:
        role = conn.execute("SELECT principal_id FROM t_server_principals WHERE name=? AND type='R'",
                            (stmt.role,)).fetchone()
        if role is None or role[0] == store.PUBLIC_ROLE_ID:
            raise SqlError(15151, "alter", "server role", stmt.role)
        member = _login(conn, stmt.member)
        if member is None:
            raise SqlError(15151, "add" if stmt.add else "drop", "principal", stmt.member)
        if stmt.add:
            conn.execute("INSERT OR IGNORE INTO t_server_role_members VALUES (?, ?)", (role[0], member[0]))
        else:
            if member[0] == store.SA_ID and role[0] == store.SYSADMIN_ID:
                raise SqlError(15405, stmt.member)
            conn.execute("DELETE FROM t_server_role_members WHERE role_principal_id=? AND member_principal_id=?",
                         (role[0], member[0]))
    s.emit_done(events)


HANDLERS = {
    st.CreateLogin: create_login, st.AlterLogin: alter_login, st.DropLogin: drop_login,
    st.CreateUser: create_user, st.DropUser: drop_user, st.PermissionStatement: permission,
    st.AlterAuthorization: alter_authorization, st.AlterServerRole: alter_server_role,
}
