"""What people see in a notebook: markdown and catalog tables (records are in records.py).

Everything the kit shows goes through here or through records.record: the text is redacted (every
encoded form of every secret this kernel knows, access.credentials) before it is displayed, and kept
in SHOWN, which Run.seal() scans again with the secrets known at the end of the run.
"""
from __future__ import annotations

import threading

from ..access.credentials import REGISTRY
from ..core.catalog import jsonable


class Shown:
    """The text of every output the kit displayed in this kernel, as displayed (already redacted).

    Scanning it at the seal catches a secret that became known only after text holding it was shown
    (a password resolved or generated later) and any encoded form redaction did not know then. It does
    not see what bypasses the kit (print() in a cell, a library's own display, IPython tracebacks of
    exceptions errors.show_plainly does not handle)."""

    def __init__(self):
        self._items: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, label: str, text: str) -> None:
        with self._lock:
            self._items.append((label, text))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def holding_secrets(self) -> list[str]:
        """The labels of the outputs that hold any encoded form of any registered secret (never the value)."""
        with self._lock:
            items = list(self._items)
        return list(dict.fromkeys(f"output {i} ({label})" for i, (label, text) in enumerate(items, 1)
                                  if REGISTRY.found_in(text)))


SHOWN = Shown()


def markdown(text: str) -> None:
    from IPython.display import Markdown, display
    text = REGISTRY.redact(text)
    SHOWN.add("markdown", text)
    display(Markdown(text))


def table(title: str, columns: list[str], rows: list[tuple]) -> None:
    import pandas as pd
    from IPython.display import display
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    cells = [[_redacted(jsonable(v)) for v in row] for row in rows]
    frame = pd.DataFrame(cells, columns=[REGISTRY.redact(str(c)) for c in columns])
    markdown(f"**{title}** — {len(rows)} row(s)")
    SHOWN.add(f"table {title}", "\n".join("\t".join(str(v) for v in row) for row in cells))
    display(frame)


def svg(image: str) -> None:
    from IPython.display import SVG, display
    image = REGISTRY.redact(image)
    SHOWN.add("svg", image)
    display(SVG(image))


def _redacted(value):
    return REGISTRY.redact(value) if isinstance(value, str) else value
