"""Secret references (env:, file:, keyring:, prompt:) resolved to the values they name.

References are parsed by mirrorkit.config.references, the parser the parameter files are checked with.

A resolved value lives only inside a Secret, which never prints itself; every
value resolved in this process is registered so that output can be redacted and
records scanned for it before they are sealed.
"""
from __future__ import annotations

import os
import secrets as _random
import string
import threading
from pathlib import Path
from typing import Iterable, Optional

from ..config.references import NotAReference, SecretRef, parse_secret_ref


class SecretError(Exception):
    """A reference cannot be resolved; the message says which one and how to fix it."""


class Secret:
    """A secret value that does not show itself in repr, str, format or pickles."""

    __slots__ = ("_value", "label")

    def __init__(self, value: str, label: str):
        if not isinstance(value, str) or value == "":
            raise SecretError(f"{label}: the secret is empty")
        self._value = value
        self.label = label
        REGISTRY.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<secret {self.label}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self):
        raise TypeError("secrets cannot be pickled")

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and _random.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self.label)


REDACTED = "********"
_BASE64_MIN = 8        # shorter base64 fragments would match random base64 data (images, fonts)


def _markdown_rendered(text: str) -> str:
    """text as markdown shows it: a backslash before ASCII punctuation is an escape and disappears."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in string.punctuation:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def encoded_forms(value: str) -> frozenset[str]:
    """Every form in which an exporter can write ``value`` (the empty string is never a form).

    * raw; the body of a T-SQL string literal (``'`` doubled, as a server echoes a statement);
    * the body of a JSON string, with and without ``ensure_ascii`` (.ipynb, manifest.json);
    * HTML-escaped, with the quotes left as they are, as ``&quot;``/``&#x27;`` (Python, nbconvert) or
      ``&#34;``/``&#39;`` (Jinja/markupsafe); also of the JSON body (JSON in HTML) and JSON of the HTML
      (an HTML output inside an .ipynb);
    * as markdown renders it: a backslash before ASCII punctuation is consumed, then HTML-escaped;
    * URL-encoded: ``quote`` (``/`` kept or not) and ``quote_plus``;
    * base64 of the UTF-8 bytes, standard and URL-safe. A value embedded in a larger base64 blob
      starts at one of three byte offsets modulo 3, and only the characters that encode nothing but the
      value are fixed, so the form is those characters at each of the three alignments (when at least
      eight characters long). Line-wrapped base64 is not recognised.

    Not covered: text that markdown turns into markup (``*emphasis*`` inside the value), compression,
    hashes, or any other encryption or encoding not listed here.
    """
    import base64
    import json
    from urllib.parse import quote, quote_plus

    forms = {value, value.replace("'", "''")}
    for ascii_only in (True, False):
        forms.add(json.dumps(value, ensure_ascii=ascii_only)[1:-1])
    rendered = _markdown_rendered(value)

    def escapes(text: str) -> set[str]:
        base = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out = set()
        for dq in ('"', "&quot;", "&#34;"):
            for sq in ("'", "&#x27;", "&#39;"):
                out.add(base.replace('"', dq).replace("'", sq))
        return out
    for text in (value, rendered, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
        forms |= escapes(text)
    for h in escapes(value) | escapes(rendered):
        forms.add(json.dumps(h)[1:-1])
        forms.add(json.dumps(h, ensure_ascii=False)[1:-1])
    forms |= {quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="/")}
    data = value.encode("utf-8")
    for offset in range(3):
        # characters [ceil(8*offset/6), floor(8*(offset+n)/6)) depend only on the value's bytes
        first, last = -(-8 * offset // 6), 8 * (offset + len(data)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            core = encode(b"\0" * offset + data).decode("ascii")[first:last]
            if len(core) >= _BASE64_MIN:
                forms.add(core)
    forms.discard("")
    return frozenset(forms)


class _Registry:
    """Every secret value resolved or generated in this process, with its encoded forms."""

    def __init__(self):
        self._forms: dict[str, frozenset[str]] = {}
        self._ordered: list[str] = []          # every form of every value, longest first
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        with self._lock:
            if value in self._forms:
                return
            self._forms[value] = encoded_forms(value)
            self._ordered = sorted({f for fs in self._forms.values() for f in fs}, key=len, reverse=True)

    def values(self) -> list[str]:
        with self._lock:
            return sorted(self._forms, key=len, reverse=True)

    def forms(self) -> list[str]:
        """Every encoded form (encoded_forms) of every value, longest first."""
        with self._lock:
            return list(self._ordered)

    def redact(self, text: str) -> str:
        """text with every encoded form of every registered value replaced by ``********``."""
        for form in self.forms():
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def found_in(self, text: str) -> bool:
        """Whether text holds any encoded form of any registered value (what redact would change)."""
        return any(form in text for form in self.forms())


REGISTRY = _Registry()


def resolve(reference: SecretRef | str, label: str, *, interactive: bool = False,
            base_dir: Optional[Path] = None) -> Secret:
    """Resolve one reference. label names the parameter for messages (never the value).

    ``reference`` is a parsed SecretRef, or its text, parsed with the same parser that validates
    parameter files (mirrorkit.config.references), so it resolves as it was checked.
    """
    if isinstance(reference, SecretRef):
        ref = reference
    else:
        try:
            ref = parse_secret_ref(reference)
        except NotAReference:
            raise SecretError(f"{label}: expected a secret reference (env:VAR, file:PATH, keyring:SERVICE/NAME "
                              "or prompt:), not a value") from None
        except ValueError as exc:           # malformed; the parser's message never holds the text
            raise SecretError(f"{label}: {exc}") from None
    kind, target = ref.kind, ref.target
    if kind == "env":
        value = os.environ.get(target)
        if not value:
            raise SecretError(f"{label}: environment variable {target} is not set (or empty); "
                              f"export {target}=… in the environment that runs the notebook")
        return Secret(value, label)
    if kind == "file":
        path = Path(target).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
        except FileNotFoundError:
            raise SecretError(f"{label}: file {target} does not exist; create it (mode 0600) with the secret "
                              "on its first line") from None
        except (OSError, IndexError) as exc:
            raise SecretError(f"{label}: cannot read {target}: {exc.__class__.__name__}") from None
        if not value:
            raise SecretError(f"{label}: file {target} is empty")
        return Secret(value, label)
    if kind == "keyring":
        service, name = ref.service, ref.username
        try:
            import keyring
        except ImportError:
            raise SecretError(f"{label}: the keyring package is not installed (pip install keyring) — or use "
                              "env: or file:") from None
        value = keyring.get_password(service, name)
        if not value:
            raise SecretError(f"{label}: keyring has no password for service {service!r}, name {name!r}")
        return Secret(value, label)
    # prompt:
    if not interactive:
        raise SecretError(f"{label}: prompt: works only when a person runs the notebook by hand "
                          "(interactive = True); use env:, file: or keyring: for scheduled runs")
    import getpass
    return Secret(getpass.getpass(f"{label}: "), label)


def generate_password(label: str, length: int = 32) -> Secret:
    """A random password that meets SQL Server's complexity policy; registered, never shown."""
    alphabet = string.ascii_letters + string.digits + "!#%*+-=?@^_~"
    while True:
        value = "".join(_random.choice(alphabet) for _ in range(length))
        if (any(c.islower() for c in value) and any(c.isupper() for c in value)
                and any(c.isdigit() for c in value) and any(not c.isalnum() for c in value)):
            return Secret(value, label)


def scan(paths: Iterable[Path]) -> list[Path]:
    """Files that contain any encoded form (encoded_forms) of any secret resolved or generated in this
    process: the names only, never the value. Files are compared as bytes, so binary files are covered."""
    forms = [f.encode("utf-8") for f in REGISTRY.forms()]
    hits = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError:
            continue
        if any(f in data for f in forms):
            hits.append(Path(path))
    return hits
