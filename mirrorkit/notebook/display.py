"""What people see in a notebook: markdown and catalog tables (records are in records.py)."""
from __future__ import annotations

from ..core.catalog import jsonable


def markdown(text: str) -> None:
    from IPython.display import Markdown, display
    display(Markdown(text))


def table(title: str, columns: list[str], rows: list[tuple]) -> None:
    import pandas as pd
    from IPython.display import display
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    frame = pd.DataFrame([[jsonable(v) for v in row] for row in rows], columns=columns)
    markdown(f"**{title}** — {len(rows)} row(s)")
    display(frame)


def svg(image: str) -> None:
    from IPython.display import SVG, display
    display(SVG(image))
