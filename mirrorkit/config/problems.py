"""What is wrong with a parameter file: ``Problem`` (one finding) and ``ParameterError`` (all of them).

A problem renders on one line: ``<file>: <key path>: <what is wrong> (line N); <what to write>``.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable

__all__ = ["Problem", "ParameterError"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a parameter file: where, what, and what to write instead."""
    path: str
    message: str
    hint: str = ""
    line: int | None = None

    def render(self, source: str) -> str:
        path, message, hint = (_one_line(t) for t in (self.path, self.message, self.hint))
        where = f"{_one_line(source)}: {path}: " if path else f"{_one_line(source)}: "
        what = message if self.line is None else f"{message} (line {self.line})"
        return f"{where}{what}; {hint}" if hint else f"{where}{what}"


def _one_line(text: str) -> str:
    """Escape control characters and line separators so that a problem renders on one line."""
    if not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


class ParameterError(Exception):
    """The parameter file (or the notebook's parameter values) is not valid.

    ``problems`` lists every problem found; ``str()`` renders one per line.
    """

    def __init__(self, source: str, problems: Iterable[Problem]):
        self.source = str(source)
        self.problems: list[Problem] = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(p.render(self.source) for p in self.problems)

    def __str__(self) -> str:
        return self.render()
