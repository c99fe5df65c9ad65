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


class _Registry:
    """Every secret value resolved or generated in this process."""

    def __init__(self):
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        with self._lock:
            self._values.add(value)

    def values(self) -> list[str]:
        with self._lock:
            return sorted(self._values, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for v in self.values():
            if v:
                text = text.replace(v, "********")
        return text

    def found_in(self, text: str) -> bool:
        return any(v and v in text for v in self.values())


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
    """Files that contain any secret resolved in this process (the names only, never the value)."""
    import html
    import json
    hits = []
    values = set()
    for v in REGISTRY.values():
        # as written, as JSON (.ipynb) and as HTML escape it
        for form in (v, json.dumps(v)[1:-1], html.escape(v), html.escape(json.dumps(v)[1:-1])):
            values.add(form.encode("utf-8"))
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError:
            continue
        if any(v and v in data for v in values):
            hits.append(Path(path))
    return hits
