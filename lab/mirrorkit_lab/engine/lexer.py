"""T-SQL tokenizer: identifiers, quoted names, N'…' strings, 0x… binaries, comments."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SqlError

# kinds
IDENT = "ident"        # regular identifier or keyword (value upper-cased in .upper)
QIDENT = "qident"      # [bracketed] or "double quoted" identifier
STRING = "string"      # '…' or N'…'
NUMBER = "number"
BINARY = "binary"      # 0x…
VAR = "var"            # @name
SYSVAR = "sysvar"      # @@name
OP = "op"
EOF = "eof"

_OPS = ("::", "<>", "!=", ">=", "<=", "!<", "!>", "+=", "-=", "*=", "/=",
        "=", "<", ">", "(", ")", ",", ";", ".", "+", "-", "*", "/", "%", "&", "|", "^", "~")

_IDENT_RE = re.compile(r"[A-Za-z_#\u0080-\uffff][A-Za-z0-9_@#$\u0080-\uffff]*")
_VAR_RE = re.compile(r"@@?[A-Za-z0-9_@#$\u0080-\uffff]*")
_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BINARY_RE = re.compile(r"0[xX][0-9A-Fa-f]*")
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class Token:
    kind: str
    value: str         # identifier text (unquoted), string contents, operator, …
    start: int         # offset in the batch
    end: int
    line: int
    national: bool = False

    @property
    def upper(self) -> str:
        return self.value.upper() if self.kind == IDENT else ""

    def is_kw(self, *words: str) -> bool:
        return self.kind == IDENT and self.value.upper() in words

    def is_op(self, *ops: str) -> bool:
        return self.kind == OP and self.value in ops


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    i, n, line = 0, len(sql), 1
    while i < n:
        c = sql[i]
        if c.isspace():
            m = _SPACE_RE.match(sql, i)
            line += sql.count("\n", i, m.end())
            i = m.end()
            continue
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        if sql.startswith("/*", i):
            i, line = _skip_block_comment(sql, i, line)
            continue
        start, start_line = i, line
        if c in "nN" and i + 1 < n and sql[i + 1] == "'":
            value, i, line = _read_quoted(sql, i + 1, "'", line)
            tokens.append(Token(STRING, value, start, i, start_line, national=True))
        elif c == "'":
            value, i, line = _read_quoted(sql, i, "'", line)
            tokens.append(Token(STRING, value, start, i, start_line))
        elif c == "[":
            value, i, line = _read_bracketed(sql, i, line)
            tokens.append(Token(QIDENT, value, start, i, start_line))
        elif c == '"':
            value, i, line = _read_quoted(sql, i, '"', line)
            tokens.append(Token(QIDENT, value, start, i, start_line))
        elif c == "0" and i + 1 < n and sql[i + 1] in "xX":
            m = _BINARY_RE.match(sql, i)
            i = m.end()
            tokens.append(Token(BINARY, m.group()[2:], start, i, start_line))
        elif c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER_RE.match(sql, i)
            i = m.end()
            tokens.append(Token(NUMBER, m.group(), start, i, start_line))
        elif c == "@":
            m = _VAR_RE.match(sql, i)
            i = m.end()
            text = m.group()
            kind = SYSVAR if text.startswith("@@") else VAR
            tokens.append(Token(kind, text, start, i, start_line))
        else:
            m = _IDENT_RE.match(sql, i)
            if m:
                i = m.end()
                tokens.append(Token(IDENT, m.group(), start, i, start_line))
                continue
            for op in _OPS:
                if sql.startswith(op, i):
                    i += len(op)
                    tokens.append(Token(OP, op, start, i, start_line))
                    break
            else:
                raise SqlError(102, c, abort_batch=True)
    tokens.append(Token(EOF, "", n, n, line))
    return tokens


def _skip_block_comment(sql: str, i: int, line: int) -> tuple[int, int]:
    # T-SQL block comments nest
    depth, j, n = 0, i, len(sql)
    while j < n:
        if sql.startswith("/*", j):
            depth += 1
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j, line + sql.count("\n", i, j)
        else:
            j += 1
    raise SqlError(113, abort_batch=True)


def _read_quoted(sql: str, i: int, quote: str, line: int) -> tuple[str, int, int]:
    j, n, parts = i + 1, len(sql), []
    while True:
        k = sql.find(quote, j)
        if k < 0:
            raise SqlError(105, sql[i + 1:i + 129], abort_batch=True)
        parts.append(sql[j:k])
        if k + 1 < n and sql[k + 1] == quote:
            parts.append(quote)
            j = k + 2
            continue
        end = k + 1
        return "".join(parts), end, line + sql.count("\n", i, end)


def _read_bracketed(sql: str, i: int, line: int) -> tuple[str, int, int]:
    j, n, parts = i + 1, len(sql), []
    while True:
        k = sql.find("]", j)
        if k < 0:
            raise SqlError(105, sql[i + 1:i + 129], abort_batch=True)
        parts.append(sql[j:k])
        if k + 1 < n and sql[k + 1] == "]":
            parts.append("]")
            j = k + 2
            continue
        end = k + 1
        return "".join(parts), end, line + sql.count("\n", i, end)
