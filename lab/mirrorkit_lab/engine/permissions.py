"""Server-scope and endpoint permissions: names, codes, and the effective-permission check.

docs: t-sql/statements/grant-endpoint-permissions-transact-sql.md,
relational-databases/system-catalog-views/sys-server-permissions-transact-sql.md.
"""
from __future__ import annotations

from typing import Optional

from . import store

ENDPOINT_PERMISSIONS = {"CONNECT": "CO", "ALTER": "AL", "CONTROL": "CL", "TAKE OWNERSHIP": "TO",
                        "VIEW DEFINITION": "VW"}
SERVER_PERMISSIONS = {
    "CONNECT SQL": "COSQ", "CONTROL SERVER": "CL", "VIEW SERVER STATE": "VWSS",
    "ALTER ANY ENDPOINT": "ALHE", "CREATE ENDPOINT": "CRHE", "VIEW ANY DEFINITION": "VWAD",
    "ALTER ANY LOGIN": "ALLG", "ALTER ANY CONNECTION": "ALCO", "SHUTDOWN": "SHDN",
    "VIEW ANY DATABASE": "VWDB", "ALTER SERVER STATE": "ALSS", "AUTHENTICATE SERVER": "AUTH",
    "IMPERSONATE ANY LOGIN": "IAL", "CREATE ANY DATABASE": "CRDB", "ALTER ANY DATABASE": "ALDB",
    "ALTER ANY SERVER ROLE": "ALSR", "ALTER SETTINGS": "ALST", "ALTER ANY CREDENTIAL": "ALCD",
}
# what else grants a permission (the permission hierarchy on the GRANT pages)
IMPLIED_BY_ON_ENDPOINT = {"CO": ("CO", "CL"), "AL": ("AL", "CL"), "VW": ("VW", "CL"),
                          "TO": ("TO", "CL"), "CL": ("CL",)}
IMPLIED_BY_ON_SERVER = {"CO": ("CL",), "AL": ("ALHE", "CL"), "VW": ("VWAD", "CL"), "TO": ("CL",),
                        "CL": ("CL",)}


def principal_ids(conn, login_id: int) -> list[int]:
    """The login itself, public, and every server role it belongs to."""
    roles = [r for (r,) in conn.execute(
        "SELECT role_principal_id FROM t_server_role_members WHERE member_principal_id=?", (login_id,))]
    return [login_id, store.PUBLIC_ROLE_ID] + roles


def _states(conn, ids: list[int], klass: int, major: int, types: tuple[str, ...]) -> set[str]:
    marks = ",".join("?" * len(ids))
    tmarks = ",".join("?" * len(types))
    rows = conn.execute(
        f"SELECT state FROM t_server_permissions WHERE class=? AND major_id=? AND "
        f"grantee_principal_id IN ({marks}) AND type IN ({tmarks})", (klass, major, *ids, *types))
    return {s for (s,) in rows}


def login_has_permission(conn, login_id: int, securable: Optional[str],
                         klass: Optional[str], permission: str) -> bool:
    ids = principal_ids(conn, login_id)
    if store.SYSADMIN_ID in ids:
        return True
    control_server = _states(conn, ids, 100, 0, ("CL",))
    klass = (klass or "SERVER").upper()
    permission = permission.upper()
    if klass == "SERVER":
        code = SERVER_PERMISSIONS.get(permission)
        if code is None:
            return False
        states = _states(conn, ids, 100, 0, (code,))
        if "D" in states:
            return False
        return bool(states & {"G", "W"}) or bool(control_server & {"G", "W"} and "D" not in control_server)
    if klass == "ENDPOINT":
        row = conn.execute("SELECT endpoint_id, principal_id FROM t_endpoints WHERE name=?",
                           (securable,)).fetchone()
        if row is None:
            return False
        endpoint_id, owner = row
        if owner == login_id:
            return True
        code = ENDPOINT_PERMISSIONS.get(permission)
        if code is None:
            return False
        on_endpoint = _states(conn, ids, 105, endpoint_id, IMPLIED_BY_ON_ENDPOINT[code])
        on_server = _states(conn, ids, 100, 0, IMPLIED_BY_ON_SERVER[code])
        if "D" in on_endpoint or "D" in on_server:
            return False
        return bool((on_endpoint | on_server) & {"G", "W"})
    return False
