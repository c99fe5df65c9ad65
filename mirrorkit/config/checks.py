"""The checks of single values: text, integer, boolean, choice, secret reference, name template.

``Checker`` collects every problem (none is raised) and knows the YAML 1.1 traps: an unquoted
``yes`` read as a boolean, ``0123`` read as octal 83, a number where a string belongs ... Each check
returns the value, or ``BAD`` when it reported a problem. ``Checker.declared`` runs the check a
key's declaration (mirrorkit.config.model) asks for.
"""
from __future__ import annotations

import difflib
import re
import string
import unicodedata
from typing import Any, Iterable, Mapping

from .model import OPTIONAL, REQUIRED, RUN_PARAMETERS, Key
from .nodes import MAP, SCALAR, SECRETISH, SEQ, UNREADABLE, Node, join, last_key, looks_secretish
from .problems import Problem
from .references import NotAReference, has_control, parse_secret_ref


def invisible_character(text: str) -> str | None:
    """The first Unicode format character (category Cf: bidirectional controls such as U+202E, zero-width
    characters, U+FEFF) in ``text``, as 'U+XXXX (NAME)'; None when there is none. They make a name display
    differently from what SQL Server stores, in the plan, the notebook and the catalog."""
    for c in text:
        if unicodedata.category(c) == "Cf":
            return f"U+{ord(c):04X} ({unicodedata.name(c, 'unnamed')})"
    return None

__all__ = ["BAD", "Checker", "SECRET_FIX", "short", "kind_of", "quote_yaml"]

SECRET_FIX = "put it in an environment variable and write env:NAME"
BAD: Any = object()             # invalid, already reported
_BOOL_WORDS = {"yes": True, "no": False, "on": True, "off": False, "y": True, "n": False}
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+\Z")


def quote_yaml(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return f"a {type(value).__name__}"


class Checker:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: str, message: str, hint: str = "", node: Node | None = None) -> None:
        self.problems.append(Problem(path, message, hint, node.line if node is not None else None))

    # -- containers ------------------------------------------------------------------------
    def mapping(self, node: Node | None, path: str, known: Iterable[str], *, what: str = "a mapping",
                elsewhere: Mapping[str, str] | None = None) -> dict[str, Node] | None:
        """The keys of a mapping section. Absent or null sections are empty. None if unusable."""
        known = tuple(known)
        if node is None or (node.kind == SCALAR and node.value is None):
            return {}
        if node.kind != MAP:
            self.add(path, f"expected {what}, got {self.describe(node, path)}",
                     f"write it as keys under {path}:" if path else
                     "a parameter file is a mapping of keys such as environment:, instances:", node)
            return None
        out: dict[str, Node] = {}
        first_line: dict[str, int | None] = {}
        for knode, vnode in node.value:
            key = knode.value
            if not isinstance(key, str):
                shown = knode.raw if knode.raw is not None else short(key)
                kpath = join(path, str(shown))
                hint = self._suggest(str(shown), known, path, elsewhere)
                if knode.raw is not None and isinstance(key, int) and vnode.value is None:
                    hint = ("inside { } a comma separates entries: quote a value that holds a comma, "
                            "e.g. server: 'sql01.example.com,1433'")
                self.add(kpath, f"key {shown} is not a name (YAML reads it as {kind_of(key)})", hint, knode)
                self._note_secret(kpath, vnode)
                continue
            kpath = join(path, key if re.fullmatch(r"[\w-]+", key) else short(key))
            if key in out:
                where = f", first written at line {first_line[key]}" if first_line.get(key) else ""
                self.add(kpath, f"duplicate key{where}",
                         "keep only one; YAML would silently use the last one", knode)
                self._note_secret(kpath, vnode)
                continue
            if key not in known:
                self.add(kpath, "unknown key", self._suggest(key, known, path, elsewhere), knode)
                self._note_secret(kpath, vnode)
                first_line[key] = knode.line
                out.setdefault(key, None)          # marks it seen for duplicate detection
                continue
            out[key] = vnode
            first_line[key] = knode.line
        return {k: v for k, v in out.items() if v is not None}

    def _suggest(self, key: str, known: tuple[str, ...], path: str,
                 elsewhere: Mapping[str, str] | None) -> str:
        low = key.lower().strip()
        if not path and low in RUN_PARAMETERS:
            return (f"{low} is given per run (papermill -p {low} ... or mirrorkit run), "
                    f"not in the parameter file; remove it")
        for k in known:
            if k == low or k == low.replace("-", "_").replace(" ", "_"):
                return f"write {join(path, k)} (keys are lower case with underscores)"
        close = difflib.get_close_matches(low, known, n=1, cutoff=0.6)
        if not close:
            close = [k for k in known if low in k.split("_")][:1]
        if close:
            return f"did you mean {join(path, close[0])}?"
        if elsewhere and low in elsewhere:
            home = elsewhere[low]
            if home == "instances[]":
                return f"{low} belongs in each item of instances: (instances[].{low})"
            return f"{low} belongs under {home}: write it as {home}.{low}"
        return "remove it; the keys here are " + ", ".join(known)

    def _note_secret(self, path: str, vnode: Node, seen: set[int] | None = None) -> None:
        """A key whose name looks secret must hold a reference (or nothing); unknown subtrees too."""
        seen = set() if seen is None else seen
        if id(vnode) in seen or len(seen) > 10_000:
            return
        seen.add(id(vnode))
        if vnode.kind == MAP:
            for k, v in vnode.value:
                self._note_secret(join(path, k.value if isinstance(k.value, str) else str(k.raw or "?")), v, seen)
            return
        if vnode.kind == SEQ:
            for i, v in enumerate(vnode.value):
                self._note_secret(f"{path}[{i}]", v, seen)
            return
        if not SECRETISH.search(last_key(path)) or last_key(path) == "secrets":
            return
        if vnode.value is None or vnode.value is UNREADABLE:
            return
        if isinstance(vnode.value, str):
            try:
                parse_secret_ref(vnode.value)
                return
            except ValueError:
                pass
        self.add(path, "looks like a secret value", SECRET_FIX, vnode)

    def describe(self, node: Node, path: str) -> str:
        if looks_secretish(path):
            return "a value (not shown)"
        if node.kind == MAP:
            return "a mapping"
        if node.kind == SEQ:
            return "a list"
        if node.raw is not None:
            if node.value is None and node.raw == "":
                return "no value"
            return short(node.raw) if node.style else node.raw[:60]
        return short(node.value)

    # -- declared keys ---------------------------------------------------------------------
    def declared(self, key: Key, node: Node | None, path: str, *, parent: Node | None = None) -> Any:
        """The check ``key`` declares, then its length and pattern; absent → the declared default.

        An OPTIONAL key left out is None; ``parent`` gives "is missing" a line.
        """
        default = None if key.default is OPTIONAL else key.default
        if key.kind == "text":
            value = self.text(node, path, default=default, nullable=key.nullable, example=key.example,
                              strip_ok=key.strip, parent=parent)
        elif key.kind == "integer":
            value = self.integer(node, path, key.lo, key.hi, default, nullable=key.nullable, example=key.example)
        elif key.kind == "boolean":
            value = self.boolean(node, path, default)
        elif key.kind == "choice":
            value = self.choice(node, path, key.choices, default, example=key.example, parent=parent)
        elif key.kind == "secret":
            value = self.secret(node, path, example=key.example)
        elif key.kind == "template":
            value = self.template(node, path, key.placeholder, default)
        else:
            raise TypeError(f"{path}: a {key.kind} is read by the validator, not checked as a value")
        if node is None or not isinstance(value, str):
            return value
        if key.max_length is not None and len(value) > key.max_length:
            self.add(path, f"is {len(value)} characters long (at most {key.max_length})", key.length_hint, node)
            return BAD
        if key.pattern is not None and not re.search(key.pattern, value):
            self.add(path, key.pattern_message.format(value=short(value)), key.pattern_hint, node)
            return BAD
        return value

    # -- scalars ---------------------------------------------------------------------------
    def text(self, node: Node | None, path: str, *, default: Any = REQUIRED, nullable: bool = False,
             example: str = "...", strip_ok: bool = False, parent: Node | None = None) -> Any:
        """A string. Absent → default (or 'missing', at the parent's line); null → None when nullable."""
        if node is None:
            if default is REQUIRED:
                self.add(path, "is missing", f"add {last_key(path)}: {example}", parent)
                return BAD
            return default
        key = last_key(path)
        value = node.value
        if value is UNREADABLE:
            return BAD
        if value is None and nullable:
            return None
        if node.kind != SCALAR:
            self.add(path, f"expected a string, got {self.describe(node, path)}",
                     f"write a single value: {key}: {example}", node)
            return BAD
        if isinstance(value, str):
            if not value.strip():
                self.add(path, "is empty", f"write a value ({key}: {example})"
                         + ("" if default is REQUIRED else " or remove the key for the default"), node)
                return BAD
            if has_control(value):
                hint = ("inside double quotes a backslash starts an escape (\\t, \\n, \\f ...); "
                        "write paths and HOST\\INSTANCE in single quotes")
                self.add(path, "contains control characters (a tab, a line or paragraph break ...)", hint, node)
                return BAD
            invisible = invisible_character(value)
            if invisible is not None:
                self.add(path, f"contains the invisible formatting character {invisible}, so it would not "
                         "read as what it is (bidirectional override, zero-width ...)",
                         "remove it and write the value with visible characters only", node)
                return BAD
            if value != value.strip() and not strip_ok:
                self.add(path, "has leading or trailing spaces", "remove them", node)
                return BAD
            return value.strip() if strip_ok else value
        self._wrong_type_for_string(node, path, example, default)
        return BAD

    def _wrong_type_for_string(self, node: Node, path: str, example: str, default: Any) -> None:
        key = last_key(path)
        value = node.value
        if looks_secretish(path):
            self.add(path, "looks like a secret value", SECRET_FIX, node)
            return
        if node.raw is not None and node.style is None:          # a YAML plain scalar
            raw = node.raw
            if isinstance(value, bool):
                self.add(path, f"unquoted {raw} is read by YAML as the boolean {str(value).lower()}",
                         f"quote it: {key}: {quote_yaml(raw)}", node)
            elif value is None:
                if raw == "":
                    self.add(path, "has no value", f"write a value ({key}: {example})"
                             + ("" if default is REQUIRED else " or remove the key for the default"), node)
                else:
                    self.add(path, f"unquoted {raw} is read by YAML as null (no value)",
                             f"quote it: {key}: {quote_yaml(raw)}", node)
            elif isinstance(value, int) and _LEADING_ZERO.match(raw):
                self.add(path, f"unquoted {raw} is read by YAML as the octal number {value}",
                         f"quote it: {key}: {quote_yaml(raw)}", node)
            elif isinstance(value, (int, float)):
                read = "" if str(value) == raw else f" ({value})"
                self.add(path, f"unquoted {raw} is read by YAML as a number{read}",
                         f"quote it: {key}: {quote_yaml(raw)}", node)
            else:
                self.add(path, f"expected a string, got {kind_of(value)}",
                         f"quote it: {key}: {quote_yaml(raw)}", node)
            return
        if isinstance(value, bool):
            why = " — YAML reads yes/no/on/off as booleans"
        elif isinstance(value, (int, float)):
            why = " — YAML reads unquoted numbers as numbers (and 0123 as octal 83)"
        elif value is None:
            why = " — YAML reads null, ~ and an empty value as None"
        else:
            why = ""
        self.add(path, f"expected a string, got {self.describe(node, path)}{why}",
                 "quote it in the parameter file", node)

    def integer(self, node: Node | None, path: str, lo: int, hi: int, default: Any, *,
                nullable: bool = False, example: int | None = None) -> Any:
        if node is None:
            return default
        key = last_key(path)
        value = node.value
        example = lo if example is None else example
        if value is UNREADABLE:
            return BAD
        if value is None and nullable:
            return None
        if node.kind == SCALAR and isinstance(value, int) and not isinstance(value, bool):
            raw = node.raw
            if raw is not None and node.style is None:
                if _LEADING_ZERO.match(raw):
                    self.add(path, f"{raw} has a leading zero, and YAML 1.1 reads it as the octal number "
                                   f"{value}", f"write {key}: {raw.lstrip('+-0').replace('_', '') or 0}", node)
                    return BAD
                if not _DECIMAL.match(raw):
                    self.add(path, f"{raw} is not written as a plain decimal integer (YAML reads it as "
                                   f"{value})", f"write {key}: {value}", node)
                    return BAD
            if not lo <= value <= hi:
                self.add(path, f"{value} is outside {lo}–{hi}", f"write an integer from {lo} to {hi}", node)
                return BAD
            return value
        shown = self.describe(node, path)
        if (node.kind == SCALAR and isinstance(value, str) and node.raw is not None and node.style is None
                and re.fullmatch(r"[-+]?0[0-9]+", value)):
            self.add(path, f"{value} has a leading zero (YAML 1.1 reads 0-prefixed numbers as octal, "
                           "or as strings when they are not)", f"write {key}: {int(value)}", node)
            return BAD
        if node.kind == SCALAR and isinstance(value, str) and _DECIMAL.match(value.strip()):
            if node.raw is not None:
                self.add(path, f"is the string {shown}, not a number",
                         f"write it without quotes: {key}: {int(value.strip())}", node)
            else:
                self.add(path, f"expected an integer, got the string {shown}",
                         "write it without quotes in the parameter file", node)
            return BAD
        if node.kind == SCALAR and isinstance(value, bool):
            self.add(path, f"expected an integer {lo}–{hi}, got the boolean {shown}",
                     f"write a number: {key}: {example}", node)
            return BAD
        if node.kind == SCALAR and value is None and node.raw == "":
            self.add(path, "has no value", f"write {key}: {example} or remove the key for the default", node)
            return BAD
        self.add(path, f"expected an integer {lo}–{hi}, got {shown}", f"write {key}: {example}", node)
        return BAD

    def boolean(self, node: Node | None, path: str, default: bool) -> Any:
        if node is None:
            return default
        key = last_key(path)
        value = node.value
        if value is UNREADABLE:
            return BAD
        if node.kind == SCALAR and isinstance(value, bool):
            raw = node.raw
            if raw is not None and node.style is None and raw.lower() not in ("true", "false"):
                self.add(path, f"{raw} is read by YAML 1.1 as {str(value).lower()}, but yes/no/on/off are "
                               "easy to misread", f"write true or false: {key}: {str(value).lower()}", node)
                return BAD
            return value
        shown = self.describe(node, path)
        if node.kind == SCALAR and isinstance(value, str):
            word = value.strip().lower()
            fix = {"true": "true", "false": "false"}.get(word)
            if fix is None and word in _BOOL_WORDS:
                fix = str(_BOOL_WORDS[word]).lower()
            if node.raw is not None:
                self.add(path, f"expected a boolean, got the string {shown}",
                         f"write true or false without quotes: {key}: {fix or 'true'}", node)
            else:
                self.add(path, f"expected a boolean, got the string {shown}",
                         "write true or false without quotes in the parameter file", node)
            return BAD
        self.add(path, f"expected a boolean, got {shown}", f"write true or false: {key}: false", node)
        return BAD

    def choice(self, node: Node | None, path: str, choices: tuple[str, ...], default: Any, *,
               example: str | None = None, parent: Node | None = None) -> Any:
        value = self.text(node, path, default=default, example=example or choices[0], strip_ok=True,
                          parent=parent)
        if value is BAD or value is None or node is None:
            return value
        norm = " ".join(value.lower().split())
        if norm in choices:
            return norm
        options = " | ".join(choices)
        close = difflib.get_close_matches(norm, choices, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? write one of {options}" if close else f"write one of {options}"
        self.add(path, f"{short(value)} is not one of {options}", hint, node)
        return BAD

    def secret(self, node: Node | None, path: str, *, example: str) -> Any:
        """A secret reference. Absent or null → None; anything else that is no reference → rejected."""
        if node is None or (node.kind == SCALAR and node.value is None):
            return None
        value = node.value
        if value is UNREADABLE:
            return BAD
        if node.kind != SCALAR:
            self.add(path, f"expected a secret reference, got {'a mapping' if node.kind == MAP else 'a list'}",
                     f"write a reference such as {example}", node)
            return BAD
        if not isinstance(value, str):
            self.add(path, "looks like a secret value", SECRET_FIX, node)
            return BAD
        try:
            return parse_secret_ref(value)
        except NotAReference:
            self.add(path, "looks like a secret value", SECRET_FIX, node)
        except ValueError as exc:       # a malformed reference: not a secret, and not echoed either
            self.add(path, "is not a valid secret reference", str(exc), node)
        return BAD

    def template(self, node: Node | None, path: str, placeholder: str, default: str) -> Any:
        value = self.text(node, path, default=default, example=quote_yaml(default))
        if value is BAD or node is None:
            return value
        try:
            fields = [(f, spec, conv) for _lit, f, spec, conv in string.Formatter().parse(value)
                      if f is not None]
        except ValueError:
            self.add(path, "has an unmatched { or }",
                     f"write {{{placeholder}}} for the {placeholder} name and {{{{ or }}}} for a literal brace",
                     node)
            return BAD
        for fname, spec, conv in fields:
            if fname != placeholder or spec or conv:
                shown = "{" + fname + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                self.add(path, f"unknown placeholder {shown}",
                         f"the only placeholder here is {{{placeholder}}}; write {{{{ or }}}} for a literal brace",
                         node)
                return BAD
        return value
