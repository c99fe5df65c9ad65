"""Writes what the parameter model (mirrorkit/config/model.py) gives people and editors.

    python tools/build_parameter_docs.py          # write the docs table and parameters/schema.json
    python tools/build_parameter_docs.py --check  # exit 1 if a committed file differs

The reference table in docs/parameters.md sits between the parameter-table markers; the rest of
that page is hand-written. tests/kit/test_parameter_model.py runs --check.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mirrorkit.config.schema import schema_text, with_reference_table  # noqa: E402

DOCS = ROOT / "docs" / "parameters.md"
SCHEMA = ROOT / "parameters" / "schema.json"


def generated() -> dict[Path, str]:
    """Each generated file and the text it should have."""
    return {DOCS: with_reference_table(DOCS.read_text(encoding="utf-8")), SCHEMA: schema_text()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        rel = path.relative_to(ROOT)
        print(f"{rel}: out of date; run python tools/build_parameter_docs.py" if args.check else f"wrote {rel}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
