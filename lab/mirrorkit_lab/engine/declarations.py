"""Parameter declarations of sp_executesql / sp_prepare: "@P1 INT,@P2 NVARCHAR(2) OUTPUT"."""
from __future__ import annotations

from functools import lru_cache


class Declared:
    __slots__ = ("name", "sqltype", "output")

    def __init__(self, name: str, sqltype: str, output: bool):
        self.name = name
        self.sqltype = sqltype
        self.output = output

    def __repr__(self) -> str:  # pragma: no cover
        return f"Declared({self.name!r}, {self.sqltype!r}, {self.output})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Declared) and (self.name, self.sqltype, self.output) == (
            other.name, other.sqltype, other.output)


class DeclarationError(ValueError):
    pass


def _split_top_level(s: str) -> list[str]:
    parts, depth, start, quote = [], 0, 0, ""
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"[":
            quote = "]" if ch == "[" else ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def parse_declaration(decl: str | None) -> tuple[Declared, ...]:
    """Split a parameter declaration on the commas outside parentheses.
    Cached (short strings only): drivers send the same declaration over and over."""
    if not decl:
        return ()
    if len(decl) <= 4000:
        return _parse_declaration_cached(decl)
    return _parse_declaration(decl)


@lru_cache(maxsize=512)
def _parse_declaration_cached(decl: str) -> tuple[Declared, ...]:
    return _parse_declaration(decl)


def _parse_declaration(decl: str) -> tuple[Declared, ...]:
    out = []
    for item in _split_top_level(decl):
        item = item.strip()
        if not item:
            continue
        if "=" in item:            # a default value: "@p int = 5"
            item = item.split("=", 1)[0].strip()
        words = item.split()
        if not words[0].startswith("@") or len(words) < 2:
            raise DeclarationError(f"cannot parse parameter declaration {item!r}")
        name = words[0]
        rest = words[1:]
        if rest and rest[0].lower() == "as":
            rest = rest[1:]
        output = False
        if rest and rest[-1].lower() in ("output", "out"):
            output = True
            rest = rest[:-1]
        if rest and rest[-1].lower() == "readonly":
            rest = rest[:-1]
        if not rest:
            raise DeclarationError(f"parameter {name} has no type")
        out.append(Declared(name, " ".join(rest).lower(), output))
    return tuple(out)
