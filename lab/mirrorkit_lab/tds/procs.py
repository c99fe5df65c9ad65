"""System procedures handled by the wire layer: sp_executesql, sp_prepare,
sp_execute, sp_prepexec, sp_unprepare (by ProcID or by name). Everything else
goes to ``session.call_procedure``.

Prepared statements live here, per connection: handle -> (sql, declarations).
The engine only ever sees ``execute(sql, params)`` with the declared
variables bound, by position (FreeTDS sends unnamed values) or by name (pytds).
"""
from __future__ import annotations

from typing import Any, Callable

from mirrorkit_lab.engine.api import Param

from . import tokens as K
from ..engine.declarations import DeclarationError, Declared, parse_declaration
from .response import ResponseBuilder
from .rpc import PROC_NAMES, RpcParam, RpcRequest

SYSTEM_PROCS = {"sp_executesql", "sp_prepare", "sp_execute", "sp_prepexec", "sp_unprepare"}
CURSOR_PROC_IDS = set(range(1, 10)) | {14}
MAX_PREPARED = 65536                 # handles per connection ...
MAX_PREPARED_CHARS = 64 * 1024 * 1024  # ... and characters of SQL they may hold


class BindError(Exception):
    def __init__(self, number: int, text: str):
        super().__init__(text)
        self.number = number
        self.text = text


def normalize_proc_name(name: str) -> str:
    """'[sys].[sp_executesql]' / 'master..sp_execute' -> 'sp_executesql' / 'sp_execute'."""
    return name.rsplit(".", 1)[-1].strip().strip("[]").lower()


def bind(decls: tuple[Declared, ...] | list[Declared], values: list[RpcParam], offset: int,
         sql: str, decl_text: str) -> tuple[list[Param], dict[str, int]]:
    """Bind RPC values to declared variables. Returns the engine params and a map
    lower-case name -> RPC parameter ordinal (for RETURNVALUE tokens)."""
    bound: dict[int, RpcParam] = {}
    ordinals: dict[str, int] = {}
    by_name = {d.name.lower(): i for i, d in enumerate(decls)}
    named_seen = False
    for pos, v in enumerate(values):
        if v.name:
            named_seen = True
            i = by_name.get(v.name.lower())
            if i is None:
                raise BindError(8145, f"{v.name} is not a parameter for procedure sp_executesql.")
        else:
            if named_seen:
                raise BindError(119, "Must pass parameter number %d and subsequent parameters as "
                                     "'@name = value'. After the form '@name = value' has been used, "
                                     "all subsequent parameters must be passed in the form "
                                     "'@name = value'." % (pos + 1))
            i = pos
            if i >= len(decls):
                raise BindError(8144, "Procedure or function has too many arguments specified.")
        bound[i] = v
        ordinals[decls[i].name.lower()] = offset + pos
    params = []
    for i, d in enumerate(decls):
        v = bound.get(i)
        if v is None or (v.status & 0x02 and v.value is None):
            if d.output:
                params.append(Param(d.name, d.sqltype, None, True))
                continue
            raise BindError(8178, f"The parameterized query '({decl_text}){sql[:100]}' expects the "
                                  f"parameter '{d.name}', which was not supplied.")
        params.append(Param(d.name, d.sqltype, v.value, d.output or v.output))
    return params, ordinals


class RpcDispatcher:
    """Runs the RPCs of one connection."""

    def __init__(self, session: Any, call: Callable[..., list]):
        self.session = session
        self._call = call          # call(fn, *args) -> events; raises Cancelled on attention
        self.prepared: dict[int, tuple[str, tuple[Declared, ...], str]] = {}
        self._prepared_chars = 0
        self._next_handle = 1

    # -- one RPC ---------------------------------------------------------------

    def run(self, req: RpcRequest, b: ResponseBuilder, last: bool) -> None:
        """Encode the full reply of one RPC, DONEPROC included."""
        b.any_error = False
        b.return_status = None
        b.return_values = []
        handle_out: tuple[int, str, int] | None = None     # (ordinal, name, handle)
        ordinals: dict[str, int] = {}
        try:
            name = normalize_proc_name(req.name) if req.proc_id is None else req.name
            if req.proc_id in CURSOR_PROC_IDS or (req.proc_id is None and name in (
                    "sp_cursoropen", "sp_cursorprepare", "sp_cursorexecute", "sp_cursorprepexec",
                    "sp_cursorfetch", "sp_cursor", "sp_cursoroption", "sp_cursorclose",
                    "sp_cursorunprepare", "sp_prepexecrpc")):
                raise BindError(50000, f"{name} is not supported by the mirrorkit lab (no "
                                       "server-side cursors); use default client-side result sets.")
            if req.proc_id is not None and req.proc_id not in PROC_NAMES:
                raise BindError(2812, f"Could not find stored procedure with ProcID {req.proc_id}.")
            if name in SYSTEM_PROCS:
                handle_out, ordinals = getattr(self, "_" + name)(req, b)
            else:
                params = [Param(p.name, p.sqltype, p.value, p.output) for p in req.params]
                events = self._call(self.session.call_procedure, req.name, params)
                b.events(events, in_rpc=True)
                # RETURNVALUE ordinals are RPC parameter positions (pytds indexes by them).
                ordinals = {p.name.lower(): i for i, p in enumerate(req.params) if p.name}
        except BindError as e:
            b.error(e.number, e.text)
        b.buf += K.returnstatus(b.return_status if b.return_status is not None else 0)
        if handle_out is not None:
            b.return_value(handle_out[0], handle_out[1], "int", handle_out[2])
        for rv in b.return_values:
            b.return_value(ordinals.get(rv.name.lower(), rv.ordinal), rv.name, rv.sqltype, rv.value)
        status = 0 if last else (K.DONE_MORE | K.DONE_RPCINBATCH)
        if b.any_error:
            status |= K.DONE_ERROR
        b.error_pending = False
        b.done(K.DONEPROC, status, None, K.CMD_RPC)

    # -- the system procedures ---------------------------------------------------

    @staticmethod
    def _arg(req: RpcRequest, i: int, pname: str) -> RpcParam:
        if len(req.params) <= i:
            raise BindError(201, f"Procedure or function '{req.name}' expects parameter "
                                 f"'{pname}', which was not supplied.")
        return req.params[i]

    @staticmethod
    def _text(p: RpcParam, pname: str, req: RpcRequest) -> str:
        if p.value is None:
            return ""
        if not isinstance(p.value, str):
            raise BindError(214, f"Procedure expects parameter '{pname}' of type "
                                 "'ntext/nchar/nvarchar'.")
        return p.value

    def _handle(self, req: RpcRequest) -> int:
        p = self._arg(req, 0, "@handle")
        h = p.value
        if isinstance(h, bool) or not isinstance(h, int):
            raise BindError(8179, f"Could not find prepared statement with handle {h}.")
        return h

    def _register(self, sql: str, decl: str) -> int:
        size = len(sql) + len(decl)
        if len(self.prepared) >= MAX_PREPARED or self._prepared_chars + size > MAX_PREPARED_CHARS:
            raise BindError(50000, "too many prepared statements on this connection "
                                   "(the client does not call sp_unprepare)")
        try:
            decls = parse_declaration(decl)
        except DeclarationError as e:
            raise BindError(102, f"Incorrect syntax in the parameter declaration: {e}") from None
        h = self._next_handle
        self._next_handle += 1
        self.prepared[h] = (sql, decls, decl)
        self._prepared_chars += size
        return h

    def _execute(self, b: ResponseBuilder, sql: str, decls: tuple[Declared, ...], decl: str,
                 values: list[RpcParam], offset: int) -> dict[str, int]:
        params, ordinals = bind(decls, values, offset, sql, decl)
        events = self._call(self.session.execute, sql, params)
        b.events(events, in_rpc=True)
        return ordinals

    def _sp_executesql(self, req: RpcRequest, b: ResponseBuilder):
        sql = self._text(self._arg(req, 0, "@stmt"), "@stmt", req)
        decl = ""
        offset = 1
        if len(req.params) > 1 and req.params[1].name.lower() in ("", "@params"):
            decl = self._text(req.params[1], "@params", req)
            offset = 2
        try:
            decls = parse_declaration(decl)
        except DeclarationError as e:
            raise BindError(102, f"Incorrect syntax in the parameter declaration: {e}") from None
        return None, self._execute(b, sql, decls, decl, req.params[offset:], offset)

    def _sp_prepexec(self, req: RpcRequest, b: ResponseBuilder):
        hp = self._arg(req, 0, "@handle")
        decl = self._text(self._arg(req, 1, "@params"), "@params", req)
        sql = self._text(self._arg(req, 2, "@stmt"), "@stmt", req)
        h = self._register(sql, decl)
        out = (0, hp.name, h)
        try:
            ordinals = self._execute(b, sql, self.prepared[h][1], decl, req.params[3:], 3)
        except BindError as e:
            b.error(e.number, e.text)
            ordinals = {}
        return out, ordinals

    def _sp_prepare(self, req: RpcRequest, b: ResponseBuilder):
        hp = self._arg(req, 0, "@handle")
        decl = self._text(self._arg(req, 1, "@params"), "@params", req)
        sql = self._text(self._arg(req, 2, "@stmt"), "@stmt", req)
        return (0, hp.name, self._register(sql, decl)), {}

    def _sp_execute(self, req: RpcRequest, b: ResponseBuilder):
        h = self._handle(req)
        entry = self.prepared.get(h)
        if entry is None:
            raise BindError(8179, f"Could not find prepared statement with handle {h}.")
        sql, decls, decl = entry
        return None, self._execute(b, sql, decls, decl, req.params[1:], 1)

    def _sp_unprepare(self, req: RpcRequest, b: ResponseBuilder):
        h = self._handle(req)
        entry = self.prepared.pop(h, None)
        if entry is None:
            raise BindError(8179, f"Could not find prepared statement with handle {h}.")
        self._prepared_chars -= len(entry[0]) + len(entry[2])
        return None, {}
