"""TEST FIXTURE: a tiny stand-in for the lab engine, answering a fixed set of
statements so the wire layer can be exercised by real clients. Not product code.
"""
from __future__ import annotations

import datetime as dt
import decimal
import itertools
import re
import threading
import uuid

from mirrorkit_lab.engine.api import LoginFailed, Param
from mirrorkit_lab.engine.results import (
    Column, DatabaseChanged, Fatal, Message, ResultSet, ReturnStatus, ReturnValue, StatementDone,
    TransactionChanged,
)

USERS = {"sa": "Secret1!", "u": "p", "alice": "pä$$wörd"}

TYPES_ROW = [
    (Column("i", "int"), 42),
    (Column("bi", "bigint"), 2 ** 40),
    (Column("si", "smallint"), -7),
    (Column("ti", "tinyint"), 255),
    (Column("b", "bit"), True),
    (Column("nv", "nvarchar(128)"), "héllo ☃"),
    (Column("sn", "sysname"), "dbo"),
    (Column("nvmax", "nvarchar(max)"), "x" * 5000),
    (Column("vc", "varchar(10)"), "abc"),
    (Column("ch", "char(4)"), "ab"),
    (Column("nch", "nchar(3)"), "z"),
    (Column("vb", "varbinary(16)"), b"\x00\x01\xff"),
    (Column("vbmax", "varbinary(max)"), b"\xab" * 9000),
    (Column("bn", "binary(4)"), b"\x01"),
    (Column("dtm", "datetime"), dt.datetime(2024, 2, 29, 13, 45, 7, 123000)),
    (Column("dt2", "datetime2(7)"), dt.datetime(2024, 2, 29, 13, 45, 7, 123456)),
    (Column("d", "date"), dt.date(1999, 12, 31)),
    (Column("g", "uniqueidentifier"), uuid.UUID("12345678-1234-5678-9abc-def012345678")),
    (Column("f", "float"), 3.25),
    (Column("r", "real"), 1.5),
    (Column("dec", "decimal(10,2)"), decimal.Decimal("-12345.67")),
    (Column("num", "numeric(38,0)"), decimal.Decimal("12345678901234567890123456789012345678")),
    (Column("m", "money"), decimal.Decimal("922337203685477.5807")),
    (Column("sv", "sql_variant"), 17),
    (Column("nul", "int"), None),
    (Column("nulstr", "nvarchar(10)"), None),
]

DATATYPE_INFO = {12: ("varchar", 8000), -9: ("nvarchar", 4000), -3: ("varbinary", 8000),
                 93: ("datetime2", 27)}


class FakeSession:
    def __init__(self, instance: "FakeInstance", spid: int, database: str):
        self.instance = instance
        self.spid = spid
        self.database = database
        self.in_transaction = False
        self.client: dict = {}           # the wire layer fills "encrypted", "client_port"
        self._desc = 0
        self._cancel = threading.Event()
        self.closed = False

    # -- helpers --
    def _begin(self) -> list:
        self._desc = next(self.instance.descriptors)
        self.in_transaction = True
        return [TransactionChanged("begin", self._desc)]

    def _end(self, kind: str) -> list:
        if not self.in_transaction:
            return [Message(3902 if kind == "commit" else 3903, 16, 1,
                            f"The {kind.upper()} TRANSACTION request has no corresponding "
                            "BEGIN TRANSACTION."), StatementDone(error=True)]
        self.in_transaction = False
        return [TransactionChanged(kind, self._desc)]

    # -- EngineSession --
    def execute(self, sql: str, params: list[Param] | None = None) -> list:
        self._cancel.clear()
        self.instance.log.append(("execute", sql, params))
        out: list = []
        for stmt in [s.strip() for s in sql.split(";")]:
            if stmt:
                out += self._statement(stmt, params or [])
                if out and isinstance(out[-1], (Fatal,)):
                    break
                if out and isinstance(out[-1], StatementDone) and out[-1].error:
                    break
        return out

    def _statement(self, s: str, params: list[Param]) -> list:
        low = s.lower()
        if low == "select 1":
            return [ResultSet([Column("", "int", False)], [(1,)]), StatementDone(rowcount=1)]
        if low.startswith("select @p") or low.startswith("select @"):
            names = [n.strip() for n in s[7:].split(",")]
            byname = {p.name.lower(): p for p in params}
            cols, row = [], []
            for n in names:
                p = byname.get(n.lower())
                if p is None:
                    return [Message(137, 15, 2, f'Must declare the scalar variable "{n}".'),
                            StatementDone(error=True)]
                t = p.sqltype
                if t in ("ntext", "text", "xml"):
                    t = "nvarchar(max)"
                cols.append(Column(n.lstrip("@"), t))
                row.append(p.value)
            return [ResultSet(cols, [tuple(row)])]
        m = re.fullmatch(r"select n?'((?:[^']|'')*)'", s, re.I | re.S)
        if m:   # a string literal (pymssql substitutes parameters client-side)
            return [ResultSet([Column("", "nvarchar(4000)")], [(m.group(1).replace("''", "'"),)])]
        if low == "select types":
            return [ResultSet([c for c, _ in TYPES_ROW], [tuple(v for _, v in TYPES_ROW)])]
        m = re.fullmatch(r"select big (\d+)", low)
        if m:
            n = int(m.group(1))
            cols = [Column("id", "int"), Column("name", "nvarchar(50)"), Column("pad", "varchar(100)")]
            return [ResultSet(cols, [(i, f"row {i}", "p" * 80) for i in range(n)])]
        if low == "select multi":
            # Like the lab engine: each SELECT is a ResultSet plus its StatementDone; the
            # middle statement is DML (a count without rows); the last SELECT relies on
            # the wire layer's own DONE(COUNT).
            return [ResultSet([Column("a", "int")], [(1,)]), StatementDone(rowcount=1),
                    StatementDone(rowcount=3),
                    ResultSet([Column("b", "nvarchar(10)")], [("x",), ("y",)])]
        m = re.fullmatch(r"print '(.*)'", s, re.I)
        if m:
            return [Message(0, 0, 1, m.group(1)), StatementDone()]
        if low == "raise":
            return [Message(50001, 16, 2, "Something went wrong in the fake engine.", line=3),
                    StatementDone(error=True)]
        if low == "select 1/0":
            return [ResultSet([Column("", "int")], []),
                    Message(8134, 16, 1, "Divide by zero error encountered."), StatementDone(error=True)]
        if low == "fatal":
            return [Message(3624, 20, 1, "A system assertion check has failed."), Fatal("test")]
        if low == "overflow":
            return [ResultSet([Column("t", "tinyint")], [(1,), (300,)])]
        m = re.fullmatch(r"waitfor delay '00:00:(\d+(?:\.\d+)?)'", low)
        if m:
            if self._cancel.wait(float(m.group(1))):
                self.instance.log.append(("cancelled", s, None))
                return [StatementDone(error=True)]
            return [StatementDone()]
        if low.startswith("insert"):
            return [StatementDone(rowcount=1)]
        if low.startswith("set "):
            return [StatementDone()]
        m = re.fullmatch(r"use \[?([^\]]+)\]?", s, re.I)
        if m:
            old, self.database = self.database, m.group(1)
            return [DatabaseChanged(self.database, old),
                    Message(5701, 0, 1, f"Changed database context to '{self.database}'."),
                    StatementDone()]
        if re.fullmatch(r"begin tran(saction)?", low):
            return self._begin() + [StatementDone()]
        m = re.fullmatch(r"if @@trancount > 0 (commit|rollback)( begin transaction)?", low)
        if m:   # FreeTDS below TDS 7.2 commits/rolls back with batches
            ev = self._end(m.group(1)) if self.in_transaction else []
            ev = [e for e in ev if not isinstance(e, StatementDone)]
            return ev + (self._begin() if m.group(2) else []) + [StatementDone()]
        m = re.fullmatch(r"(commit|rollback)( tran(saction)?)?", low)
        if m:
            ev = self._end(m.group(1))
            return ev if isinstance(ev[-1], StatementDone) else ev + [StatementDone()]
        m = re.fullmatch(r"(exec )?sp_datatype_info(_\d+)? (-?\d+),\s*3", low)
        if m:
            name, size = DATATYPE_INFO.get(int(m.group(3)), ("int", 10))
            cols = [Column("TYPE_NAME", "sysname"), Column("DATA_TYPE", "smallint"),
                    Column("PRECISION", "int")]
            return [ResultSet(cols, [(name, int(m.group(3)), size)])]
        if low == "select @@spid":
            return [ResultSet([Column("", "smallint")], [(self.spid,)])]
        if low == "select db_name()":
            return [ResultSet([Column("", "nvarchar(128)")], [(self.database,)])]
        if low == "select @@trancount":
            return [ResultSet([Column("", "int")], [(1 if self.in_transaction else 0,)])]
        return [Message(2812 if low.startswith("exec") else 208, 16, 1,
                        f"Invalid object name '{s[:40]}'."), StatementDone(error=True)]

    def call_procedure(self, name: str, params: list[Param]) -> list:
        self.instance.log.append(("call", name, params))
        if name.lower() in ("echo_proc", "out_proc"):
            out: list = []
            if name.lower() == "echo_proc":
                out.append(ResultSet([Column("n", "int")], [(len(params),)]))
            out.append(ReturnStatus(5))
            for i, p in enumerate(params):
                if p.output:
                    v = p.value * 2 if isinstance(p.value, int) else p.value
                    out.append(ReturnValue(i, p.name, p.sqltype, v))
            return out
        return [Message(2812, 16, 62, f"Could not find stored procedure '{name}'."),
                StatementDone(error=True)]

    def begin_transaction(self) -> list:
        self.instance.log.append(("begin", None, None))
        return self._begin()

    def commit(self, begin_new: bool) -> list:
        self.instance.log.append(("commit", begin_new, None))
        ev = self._end("commit")
        return ev + (self._begin() if begin_new else [])

    def rollback(self, begin_new: bool) -> list:
        self.instance.log.append(("rollback", begin_new, None))
        ev = self._end("rollback") if self.in_transaction else []
        return ev + (self._begin() if begin_new else [])

    def cancel(self) -> None:
        self.instance.cancels += 1
        self._cancel.set()

    def close(self) -> None:
        self.closed = True


class FakeInstance:
    name = "FAKESQL"

    def __init__(self):
        self._spids = itertools.count(51)
        self.descriptors = itertools.count(0x1000)
        self.log: list = []
        self.logins: list = []
        self.sessions: list[FakeSession] = []
        self.cancels = 0

    def login(self, user, password, database, *, app="", host="", library="", client_address="",
              tds_version=0x74000004):
        self.logins.append(dict(user=user, password=password, database=database, app=app,
                                host=host, library=library, client_address=client_address,
                                tds_version=tds_version))
        if USERS.get(user) != password:
            raise LoginFailed(Message(18456, 14, 1, f"Login failed for user '{user}'."))
        s = FakeSession(self, next(self._spids), database or "master")
        self.sessions.append(s)
        return s
