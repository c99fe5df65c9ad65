"""Records: JSON a program reads back from an executed notebook, shown to people as one line.

Each record is a display_data output with two representations: the vendor MIME type
below (the data) and text/plain (a summary line for JupyterLab and the HTML export).
Every string of a record (keys, values, the summary) is redacted before it is displayed,
and the record is kept in display.SHOWN for the seal's scan.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..access.credentials import REGISTRY
from . import display as _display

MIME = "application/vnd.mirrorkit.record+json"
SCHEMA_VERSION = 1
SEAL_SECRET_FOUND = "secret_found"     # the seal's status when a secret was found in the outputs


def record(name: str, value: Any, summary: str) -> None:
    from IPython.display import display
    payload = {"name": name, "schema": SCHEMA_VERSION, "value": redacted(json.loads(json.dumps(value, default=str)))}
    summary = REGISTRY.redact(summary)
    _display.SHOWN.add(f"record {name}", json.dumps(payload, ensure_ascii=False) + "\n" + summary)
    display({MIME: payload, "text/plain": f"[record] {name}: {summary}"}, raw=True,
            metadata={"mirrorkit": {"name": name}})


def redacted(value: Any) -> Any:
    """A JSON value with every string in it (keys too) redacted."""
    if isinstance(value, str):
        return REGISTRY.redact(value)
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, dict):
        return {REGISTRY.redact(k): redacted(v) for k, v in value.items()}
    return value


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
