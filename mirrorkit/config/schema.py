"""What the parameter model gives people and editors: the docs' reference table and a JSON Schema.

Both are derived from the declarations in mirrorkit.config.model; tools/build_parameter_docs.py
writes them (docs/parameters.md between the table markers, parameters/schema.json) and
``--check`` tells whether the committed files are current. The validator remains the authority:
the JSON Schema cannot express the rules across keys (topology, uniqueness, authentication ...),
and its choices are the canonical lower-case spellings the validator also accepts in other cases.
"""
from __future__ import annotations

import json
from typing import Any

from .model import DEFAULTS, OPTIONAL, REQUIRED, Environment, Key, keys_of, walk
from .references import SECRET_PATTERN

__all__ = ["SCHEMA_COMMENT", "TABLE_BEGIN", "TABLE_END", "json_schema", "schema_text", "reference_table",
           "with_reference_table"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: The first line of every parameter file in parameters/: editors with the YAML language server use it.
SCHEMA_COMMENT = "# yaml-language-server: $schema=./schema.json"
TABLE_BEGIN = "<!-- parameter table: generated from mirrorkit/config/model.py by tools/build_parameter_docs.py -->"
TABLE_END = "<!-- end of parameter table -->"


# ---------------------------------------------------------------------------------------------
# The docs table
# ---------------------------------------------------------------------------------------------


def _type_cell(key: Key) -> str:
    if key.doc_type:
        return key.doc_type
    if key.kind == "integer":
        return f"integer {key.unit + ' ' if key.unit else ''}{key.lo}–{key.hi}"
    if key.kind == "choice":
        return " \\| ".join(f"`{c}`" for c in key.choices)
    return {"text": "string", "secret": "secret reference"}.get(key.kind, key.kind)


def _default_cell(key: Key) -> str:
    if key.doc_default:
        return key.doc_default
    if key.default is REQUIRED:
        return "required"
    if key.default is None or key.default is OPTIONAL:
        return "none"
    if isinstance(key.default, bool):
        return f"`{str(key.default).lower()}`"
    return f"`{key.default}`"


def reference_table() -> str:
    """The Markdown table of every key: Key, Type, Default, Meaning."""
    rows = ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    for path, key in walk():
        meaning = key.help.replace("|", "\\|")
        rows.append(f"| `{path}` | {_type_cell(key)} | {_default_cell(key)} | {meaning} |")
    return "\n".join(rows) + "\n"


def with_reference_table(doc: str) -> str:
    """``doc`` with the text between the table markers replaced by the current table."""
    begin, end = doc.index(TABLE_BEGIN) + len(TABLE_BEGIN), doc.index(TABLE_END)
    return doc[:begin] + "\n" + reference_table() + doc[end:]


# ---------------------------------------------------------------------------------------------
# The JSON Schema
# ---------------------------------------------------------------------------------------------


def _nullable(kind: str, key: Key) -> Any:
    return [kind, "null"] if key.nullable else kind


def _description(key: Key) -> str:
    return f"{key.help} (default: {key.doc_default})" if key.doc_default else key.help


def _property(key: Key, defs: dict[str, Any]) -> dict[str, Any]:
    if key.kind in ("section", "overrides", "items"):
        name = key.section.__name__
        if name not in defs:
            defs[name] = {}                     # placeholder, against recursion
            defs[name] = _object(key.section, defs, nullable=key.kind != "items")
        ref = {"$ref": f"#/$defs/{name}"}
        if key.kind == "items":
            return {"description": key.help, "type": "array", "minItems": 1, "items": ref}
        return {"description": _description(key), **ref}
    out: dict[str, Any] = {"description": _description(key)}
    if key.kind in ("text", "template"):
        out["type"] = _nullable("string", key)
        out["minLength"] = 1
        if key.max_length is not None:
            out["maxLength"] = key.max_length
        if key.pattern is not None:
            out["pattern"] = key.pattern
    elif key.kind == "integer":
        out.update(type=_nullable("integer", key), minimum=key.lo, maximum=key.hi)
    elif key.kind == "boolean":
        out["type"] = "boolean"
    elif key.kind == "choice":
        out.update(type="string", enum=list(key.choices))
    elif key.kind == "secret":
        out.update(type=["string", "null"], pattern=SECRET_PATTERN)
    else:
        raise TypeError(f"no JSON Schema for a {key.kind}")
    if key.default not in (REQUIRED, OPTIONAL, DEFAULTS, None):
        out["default"] = key.default
    return out


def _object(cls: type, defs: dict[str, Any], *, nullable: bool) -> dict[str, Any]:
    keys = keys_of(cls)
    out: dict[str, Any] = {
        "type": ["object", "null"] if nullable else "object",
        "additionalProperties": False,
        "properties": {name: _property(key, defs) for name, key in keys.items()},
    }
    required = [name for name, key in keys.items() if key.default is REQUIRED]
    if required:
        out["required"] = required
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a parameter file, for editors."""
    defs: dict[str, Any] = {}
    root = _object(Environment, defs, nullable=False)
    return {
        "$schema": DRAFT,
        "title": "mirrorkit parameter file",
        "description": "A parameter file of mirrorkit (docs/parameters.md). Generated from mirrorkit/config/model.py "
                       "by tools/build_parameter_docs.py; do not edit. The kit's validator also checks the rules "
                       "across keys and the YAML 1.1 traps.",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """parameters/schema.json as it is committed."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
