"""RPC request parsing (MS-TDS 2.2.6.6): one message may hold several RPCs
separated by 0xFF (BatchFlag, 7.2+), 0xFE (NoExecFlag) or 0x80 (before 7.2)."""
from __future__ import annotations

from typing import Any

from .login7 import TDS72
from .params import Reader, read_param_value
from .packets import ProtocolError

# Well-known ProcIDs (NameLenProcID = 0xFFFF).
PROC_NAMES = {
    1: "sp_cursor", 2: "sp_cursoropen", 3: "sp_cursorprepare", 4: "sp_cursorexecute",
    5: "sp_cursorprepexec", 6: "sp_cursorunprepare", 7: "sp_cursorfetch", 8: "sp_cursoroption",
    9: "sp_cursorclose", 10: "sp_executesql", 11: "sp_prepare", 12: "sp_execute",
    13: "sp_prepexec", 14: "sp_prepexecrpc", 15: "sp_unprepare",
}

PARAM_BYREF = 0x01       # OUTPUT parameter
PARAM_DEFAULT = 0x02

_SEPARATORS_72 = (0xFF, 0xFE)
_SEPARATORS_71 = (0x80, 0xFF, 0xFE)


class RpcParam:
    __slots__ = ("name", "status", "sqltype", "value")

    def __init__(self, name: str, status: int, sqltype: str, value: Any):
        self.name = name
        self.status = status
        self.sqltype = sqltype
        self.value = value

    @property
    def output(self) -> bool:
        return bool(self.status & PARAM_BYREF)

    def __repr__(self) -> str:  # pragma: no cover
        return f"RpcParam({self.name!r}, 0x{self.status:02x}, {self.sqltype!r}, {self.value!r})"


class RpcRequest:
    __slots__ = ("proc_id", "name", "options", "params")

    def __init__(self, proc_id: int | None, name: str, options: int, params: list[RpcParam]):
        self.proc_id = proc_id
        self.name = name          # the procedure name (also filled in for known ProcIDs)
        self.options = options
        self.params = params

    def __repr__(self) -> str:  # pragma: no cover
        return f"RpcRequest({self.proc_id}, {self.name!r}, {self.params!r})"


def parse_rpc(payload: bytes, start: int, version: int) -> list[RpcRequest]:
    """All RPCs of one message; ``start`` is the offset after ALL_HEADERS."""
    r = Reader(payload, start)
    seps = _SEPARATORS_72 if version >= TDS72 else _SEPARATORS_71
    out: list[RpcRequest] = []
    while r.remaining() > 0:
        n = r.u16()
        if n == 0xFFFF:
            proc_id = r.u16()
            name = PROC_NAMES.get(proc_id, f"#{proc_id}")
        else:
            if n == 0 or n > 1046:
                raise ProtocolError("bad RPC procedure name length")
            proc_id = None
            name = r.take(2 * n).decode("utf-16-le", errors="replace")
        options = r.u16()
        params: list[RpcParam] = []
        while r.remaining() > 0:
            b = r.peek()
            if b in seps:
                r.pos += 1
                break
            pname = r.b_varchar()
            status = r.u8()
            sqltype, value = read_param_value(r)
            params.append(RpcParam(pname, status, sqltype, value))
        out.append(RpcRequest(proc_id, name, options, params))
        if len(out) > 100000:
            raise ProtocolError("too many RPCs in one message")
    if not out:
        raise ProtocolError("empty RPC request")
    return out


def skip_all_headers(payload: bytes, version: int) -> int:
    """Offset of the request body. ALL_HEADERS exists from TDS 7.2 on; we accept
    its absence when the first DWORD cannot be a header block (lenient for odd
    clients), and never trust the transaction descriptor inside it."""
    if version < TDS72 or len(payload) < 4:
        return 0
    total = int.from_bytes(payload[0:4], "little")
    if total < 4 or total > len(payload):
        return 0
    pos = 4
    while pos < total:
        if pos + 6 > total:
            return 0
        hlen = int.from_bytes(payload[pos:pos + 4], "little")
        if hlen < 6:
            return 0
        pos += hlen
    return total if pos == total else 0
