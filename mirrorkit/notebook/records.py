"""Records: JSON a program reads back from an executed notebook, shown to people as one line.

Each record is a display_data output with two representations: the vendor MIME type
below (the data) and text/plain (a summary line for JupyterLab and the HTML export).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

MIME = "application/vnd.mirrorkit.record+json"
SCHEMA_VERSION = 1


def record(name: str, value: Any, summary: str) -> None:
    from IPython.display import display
    payload = {"name": name, "schema": SCHEMA_VERSION, "value": json.loads(json.dumps(value, default=str))}
    display({MIME: payload, "text/plain": f"[record] {name}: {summary}"}, raw=True,
            metadata={"mirrorkit": {"name": name}})


def iter_records(path: Path) -> Iterator[dict]:
    """Every record of an executed notebook, in cell order: {"name", "schema", "value"}."""
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if MIME in data:
                yield data[MIME]


def read_records(path: Path) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for rec in iter_records(path):
        out.setdefault(rec["name"], []).append(rec["value"])
    return out
