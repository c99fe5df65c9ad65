"""Turns engine events into one reply token stream (MS-TDS 2.2.7, reference §7).

Rules that keep clients in sync:
* every DONE but the last carries MORE; the last DONE of a reply never does;
* a statement that produced an ERROR token gets DONE_ERROR (pytds raises only then);
* inside an RPC statements end with DONEINPROC (always MORE), the RPC with DONEPROC.
Rows are appended to the packet writer's buffer and flushed as packets fill,
so large results stream and an ATTENTION can stop them between rows.
"""
from __future__ import annotations

import logging
from typing import Any

from mirrorkit_lab.engine.results import (
    Column, DatabaseChanged, Fatal, Message, ResultSet, ReturnStatus, ReturnValue, StatementDone,
    TransactionChanged,
)

from . import tokens as K
from .packets import Cancelled, PacketWriter
from .types import ColumnType, EncodeError, column_type

log = logging.getLogger("mirrorkit_lab.tds")

_ROW = b"\xd1"
_FLUSH_ROWS = 128          # check for a full buffer / attention every N rows
_META_CACHE_MAX = 512


class MetaCache:
    """COLMETADATA bytes + row encoders per distinct column list (per connection)."""

    def __init__(self, version: int):
        self.version = version
        self._cache: dict[tuple, tuple[bytes, tuple]] = {}

    def get(self, columns: list[Column]) -> tuple[bytes, tuple]:
        key = tuple(columns)      # Column is a frozen dataclass: hashable
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        cols: list[tuple[str, ColumnType, int]] = []
        for c in columns:
            cols.append((c.name, column_type(c.sqltype, self.version), 0x0001 if c.nullable else 0))
        hit = (K.colmetadata(cols, self.version), tuple(ct.encode for _, ct, _ in cols))
        if len(self._cache) >= _META_CACHE_MAX:
            self._cache.clear()
        self._cache[key] = hit
        return hit


class ResponseBuilder:
    """Encodes the events of one request into ``writer``."""

    __slots__ = ("w", "buf", "version", "server", "meta", "in_tx", "error_pending", "any_error",
                 "close_after", "stopped", "return_status", "return_values", "last_done_final")

    def __init__(self, writer: PacketWriter, version: int, server: str, meta: MetaCache,
                 in_tx: bool):
        self.w = writer
        self.buf = writer.buf
        self.version = version
        self.server = server
        self.meta = meta
        self.in_tx = in_tx
        self.error_pending = False    # an ERROR token since the last DONE*
        self.any_error = False        # an ERROR token in this request (for DONEPROC)
        self.close_after = False      # Fatal or severity >= 20: hang up after sending
        self.stopped = False          # stop encoding further events of this request
        self.return_status: int | None = None
        self.return_values: list[ReturnValue] = []
        self.last_done_final = False

    # -- single tokens -------------------------------------------------------

    def message(self, m: Message) -> None:
        self.buf += K.message(m.number, m.state, m.severity, m.text, self.server, m.procedure,
                              m.line, self.version)
        if m.severity > 10:
            self.error_pending = True
            self.any_error = True
        if m.severity >= 20:
            self.close_after = True
            self.stopped = True

    def error(self, number: int, text: str, severity: int = 16, state: int = 1) -> None:
        self.message(Message(number, severity, state, text))

    def done(self, token: int, status: int, rowcount: int | None, curcmd: int = 0) -> None:
        if rowcount is not None:
            status |= K.DONE_COUNT
        else:
            rowcount = 0
        if self.error_pending:
            status |= K.DONE_ERROR
            self.error_pending = False
        if self.in_tx:
            status |= K.DONE_INXACT
        self.buf += K.done(token, status, curcmd, rowcount, self.version)

    # -- events --------------------------------------------------------------

    def events(self, events: list, in_rpc: bool) -> None:
        """Encode events. In batch mode the last DONE is final (no MORE), and a
        final DONE is added when the events do not end with one.

        A StatementDone right after a ResultSet ends that result set: the two
        give ONE DONE carrying the StatementDone's count and error flag. A
        ResultSet on its own gets DONE(COUNT, number of rows). (An extra DONE
        after the rows would make FreeTDS see another result and send an
        ATTENTION before every next query.)
        """
        last = len(events) - 1
        while last >= 0 and isinstance(events[last], Fatal):
            last -= 1
        token = K.DONEINPROC if in_rpc else K.DONE
        self.last_done_final = False
        n_events = len(events)
        i = 0
        while i < n_events and not self.stopped:
            ev = events[i]
            cls = type(ev)
            if cls is ResultSet:
                try:
                    n = self._result_set(ev)
                except EncodeError as e:
                    self._abort_statement(str(e), token)
                    break
                nxt = events[i + 1] if i + 1 < n_events else None
                if type(nxt) is StatementDone:
                    i += 1                       # the statement's own end
                    n = nxt.rowcount
                    if nxt.error:
                        self.error_pending = True
                more = in_rpc or i != last
                self.done(token, K.DONE_MORE if more else 0, n, K.CMD_SELECT)
                self.last_done_final = not more
            elif cls is StatementDone:
                if ev.error:
                    self.error_pending = True
                more = in_rpc or i != last
                self.done(token, K.DONE_MORE if more else 0, ev.rowcount)
                self.last_done_final = not more
            elif cls is Message:
                self.message(ev)
            elif cls is DatabaseChanged:
                self.buf += K.env_database(ev.new, ev.old)
            elif cls is TransactionChanged:
                self.buf += K.env_transaction(ev.kind, ev.descriptor)
                self.in_tx = ev.kind == "begin"
            elif cls is ReturnStatus:
                if in_rpc:
                    self.return_status = ev.value
                else:
                    self.buf += K.returnstatus(ev.value)
            elif cls is ReturnValue:
                if in_rpc:
                    self.return_values.append(ev)
                else:
                    self._return_value(ev.ordinal, ev)
            elif cls is Fatal:
                log.warning("engine asked to close the connection: %s", ev.reason)
                self.close_after = True
                self.stopped = True
            else:
                log.error("unknown engine event %r ignored", ev)
            self.w.maybe_flush()
            i += 1

    def finish_batch(self) -> None:
        """Make sure the reply ends with a DONE without MORE."""
        if not self.last_done_final or self.error_pending:
            self.done(K.DONE, 0, None)
            self.last_done_final = True

    def _abort_statement(self, text: str, token: int) -> None:
        number = 8115 if text.startswith("Arithmetic overflow") else 50000
        self.error(number, text)
        self.done(token, K.DONE_MORE if token == K.DONEINPROC else 0, None)
        self.last_done_final = token == K.DONE
        self.stopped = True

    def _result_set(self, rs: ResultSet) -> int:
        """COLMETADATA + ROWs; returns the row count. ``rows`` may be any
        iterable (a generator streams: packets leave as they fill)."""
        if not rs.columns:
            return sum(1 for _ in rs.rows)
        colmeta, encs = self.meta.get(rs.columns)
        buf = self.buf
        buf += colmeta
        ncol = len(encs)
        flush = self.w.maybe_flush
        n = 0
        try:
            if ncol == 1:
                e0 = encs[0]
                for row in rs.rows:
                    if len(row) != 1:
                        raise EncodeError(f"row has {len(row)} values for 1 column")
                    buf += _ROW + e0(row[0])      # encode first: no half rows on errors
                    n += 1
                    if not n % _FLUSH_ROWS:
                        flush()
            else:
                for row in rs.rows:
                    if len(row) != ncol:
                        raise EncodeError(f"row has {len(row)} values for {ncol} columns")
                    buf += _ROW + b"".join([e(v) for e, v in zip(encs, row)])
                    n += 1
                    if not n % _FLUSH_ROWS:
                        flush()
        except (EncodeError, Cancelled):
            raise
        except Exception as e:      # a bad value, or an engine generator that failed
            if not isinstance(e, (TypeError, ValueError, OverflowError)):
                log.exception("producing the rows of a result set failed")
            raise EncodeError(f"cannot send the result: {type(e).__name__}: {e}") from None
        return n

    def _return_value(self, ordinal: int, ev: ReturnValue, status: int = 0x01) -> None:
        try:
            ctype = column_type(ev.sqltype, self.version)
            self.buf += K.returnvalue(ordinal, ev.name, ctype, ev.value, self.version, status)
        except (EncodeError, TypeError, ValueError, OverflowError) as e:
            self.error(50000, f"cannot send output parameter {ev.name}: {e}")

    def return_value(self, ordinal: int, name: str, sqltype: str, value: Any) -> None:
        self._return_value(ordinal, ReturnValue(ordinal, name, sqltype, value))

