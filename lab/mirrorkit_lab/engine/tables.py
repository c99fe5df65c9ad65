"""User tables: their metadata (t_tables, t_columns, t_constraints) and rows.

Rows live in one SQLite table per user table, u{database_id}_{object_id}, whose columns are
the T-SQL column names and whose "_rid" (the SQLite rowid) identifies a row in the log. Values
are stored in the lab's SQLite storage form (sqltypes.to_sqlite). Every change to metadata or
rows goes through this module, so the transaction log (txlog.py) can replay it anywhere.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Optional

from . import store
from .sqltypes import parse_type

RID = "_rid"


@dataclass(frozen=True)
class ColumnDef:
    column_id: int
    name: str
    type: str
    nullable: bool = True
    identity: Optional[tuple[int, int]] = None      # (seed, increment)
    default_text: Optional[str] = None


@dataclass(frozen=True)
class ConstraintDef:
    name: str
    type: str                                       # PK | UQ
    columns: tuple[str, ...]


@dataclass(frozen=True)
class TableDef:
    database_id: int
    object_id: int
    schema: str
    name: str
    columns: tuple[ColumnDef, ...]
    constraints: tuple[ConstraintDef, ...] = ()
    create_date: str = ""

    @property
    def physical(self) -> str:
        return physical_name(self.database_id, self.object_id)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Optional[ColumnDef]:
        for c in self.columns:
            if c.name.lower() == name.lower():
                return c
        return None

    @property
    def identity_column(self) -> Optional[ColumnDef]:
        return next((c for c in self.columns if c.identity), None)

    def definition(self) -> dict:
        """The JSON-able form carried by create_table log records and backup sets."""
        return {"object_id": self.object_id, "schema": self.schema, "name": self.name,
                "create_date": self.create_date,
                "columns": [[c.column_id, c.name, c.type, c.nullable, list(c.identity) if c.identity else None,
                             c.default_text] for c in self.columns],
                "constraints": [[k.name, k.type, list(k.columns)] for k in self.constraints]}

    @classmethod
    def from_definition(cls, database_id: int, d: dict) -> "TableDef":
        return cls(database_id, int(d["object_id"]), str(d["schema"]), str(d["name"]),
                   tuple(ColumnDef(int(c[0]), str(c[1]), str(c[2]), bool(c[3]),
                                   tuple(c[4]) if c[4] else None, c[5]) for c in d["columns"]),
                   tuple(ConstraintDef(str(k[0]), str(k[1]), tuple(k[2])) for k in d["constraints"]),
                   str(d.get("create_date") or ""))


def physical_name(database_id: int, object_id: int) -> str:
    return f"u{int(database_id)}_{int(object_id)}"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- metadata ------------------------------------------------------------------------------------------
def load(conn: sqlite3.Connection, database_id: int) -> dict[tuple[str, str], TableDef]:
    """Every table of a database, by (lower schema, lower name)."""
    cols: dict[int, list[ColumnDef]] = {}
    for oid, cid, name, typ, nullable, ident, seed, inc, default in conn.execute(
            "SELECT object_id, column_id, name, type, is_nullable, is_identity, seed, increment, default_text "
            "FROM t_columns WHERE database_id=? ORDER BY object_id, column_id", (database_id,)):
        cols.setdefault(oid, []).append(
            ColumnDef(cid, name, typ, bool(nullable), (seed, inc) if ident else None, default))
    cons: dict[int, list[ConstraintDef]] = {}
    for oid, name, typ, columns in conn.execute(
            "SELECT object_id, name, type, columns FROM t_constraints WHERE database_id=?", (database_id,)):
        cons.setdefault(oid, []).append(ConstraintDef(name, typ, tuple(json.loads(columns))))
    out = {}
    for oid, schema, name, created in conn.execute(
            "SELECT object_id, schema_name, name, create_date FROM t_tables WHERE database_id=?", (database_id,)):
        out[(schema.lower(), name.lower())] = TableDef(database_id, oid, schema, name, tuple(cols.get(oid, ())),
                                                       tuple(cons.get(oid, ())), created)
    return out


def by_id(conn: sqlite3.Connection, database_id: int, object_id: int) -> Optional[TableDef]:
    for t in load(conn, database_id).values():
        if t.object_id == object_id:
            return t
    return None


def next_object_id(conn: sqlite3.Connection, database_id: int) -> int:
    row = conn.execute("SELECT next_object_id FROM t_databases WHERE database_id=?", (database_id,)).fetchone()
    oid = int(row[0] or 901578250)
    # object ids look like SQL Server's: large, spread out
    conn.execute("UPDATE t_databases SET next_object_id=? WHERE database_id=?", (oid + 16003, database_id))
    return oid


def create(conn: sqlite3.Connection, t: TableDef) -> None:
    now = t.create_date or store.fmt_datetime(store.utcnow())
    conn.execute("INSERT INTO t_tables VALUES (?, ?, ?, ?, ?, ?, NULL)",
                 (t.database_id, t.object_id, t.schema, t.name, now, now))
    conn.executemany("INSERT INTO t_columns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(t.database_id, t.object_id, c.column_id, c.name, c.type, int(c.nullable),
                       int(bool(c.identity)), c.identity[0] if c.identity else None,
                       c.identity[1] if c.identity else None, c.default_text) for c in t.columns])
    conn.executemany("INSERT INTO t_constraints VALUES (?, ?, ?, ?, ?)",
                     [(t.database_id, t.object_id, k.name, k.type, json.dumps(list(k.columns)))
                      for k in t.constraints])
    parts = [f"{quote(RID)} INTEGER PRIMARY KEY"]
    for c in t.columns:
        collate = " COLLATE NOCASE" if parse_type(c.type).is_string else ""
        parts.append(quote(c.name) + collate)
    for k in t.constraints:
        parts.append("UNIQUE (" + ", ".join(quote(c) for c in k.columns) + ")")
    conn.execute(f"CREATE TABLE {quote(t.physical)} ({', '.join(parts)})")


def drop(conn: sqlite3.Connection, t: TableDef) -> None:
    for table in ("t_tables", "t_columns", "t_constraints"):
        conn.execute(f"DELETE FROM {table} WHERE database_id=? AND object_id=?", (t.database_id, t.object_id))
    conn.execute(f"DROP TABLE IF EXISTS {quote(t.physical)}")


def drop_database(conn: sqlite3.Connection, database_id: int) -> None:
    for t in load(conn, database_id).values():
        drop(conn, t)


# -- rows ----------------------------------------------------------------------------------------------
def rows(conn: sqlite3.Connection, t: TableDef) -> list[tuple[int, dict]]:
    names = [c.name for c in t.columns]
    sql = f"SELECT {quote(RID)}, {', '.join(quote(n) for n in names)} FROM {quote(t.physical)} ORDER BY 1"
    return [(r[0], dict(zip(names, r[1:]))) for r in conn.execute(sql)]


def insert_row(conn: sqlite3.Connection, t: TableDef, values: dict, rid: Optional[int] = None) -> int:
    names = list(values)
    cols = ([quote(RID)] if rid is not None else []) + [quote(n) for n in names]
    args = ([rid] if rid is not None else []) + [values[n] for n in names]
    cur = conn.execute(f"INSERT INTO {quote(t.physical)} ({', '.join(cols)}) VALUES "
                       f"({', '.join('?' * len(args))})", args)
    return rid if rid is not None else int(cur.lastrowid)


def update_row(conn: sqlite3.Connection, t: TableDef, rid: int, values: dict) -> None:
    if values:
        conn.execute(f"UPDATE {quote(t.physical)} SET {', '.join(quote(n) + ' = ?' for n in values)} "
                     f"WHERE {quote(RID)} = ?", [*values.values(), rid])


def delete_row(conn: sqlite3.Connection, t: TableDef, rid: int) -> None:
    conn.execute(f"DELETE FROM {quote(t.physical)} WHERE {quote(RID)} = ?", (rid,))


def note_identity(conn: sqlite3.Connection, t: TableDef, value: int) -> None:
    conn.execute("UPDATE t_tables SET identity_value=? WHERE database_id=? AND object_id=?",
                 (value, t.database_id, t.object_id))


def next_identity(conn: sqlite3.Connection, t: TableDef) -> int:
    col = t.identity_column
    assert col is not None and col.identity is not None
    seed, inc = col.identity
    row = conn.execute("SELECT identity_value FROM t_tables WHERE database_id=? AND object_id=?",
                       (t.database_id, t.object_id)).fetchone()
    return seed if row is None or row[0] is None else int(row[0]) + inc
