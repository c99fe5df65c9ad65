"""Secret references: the one parser of ``env:VAR``, ``file:PATH``, ``keyring:SERVICE/NAME``, ``prompt:``.

The parameter validator and the resolver (mirrorkit.access.credentials) both use ``parse_secret_ref``,
so a reference means the same thing when it is checked and when it is resolved.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["SECRET_KINDS", "SECRET_PATTERN", "SecretRef", "NotAReference", "parse_secret_ref", "has_control"]

#: The kinds of reference, as written before the colon.
SECRET_KINDS = ("env", "file", "keyring", "prompt")
#: What a reference looks like to an editor (JSON Schema ``pattern``); the parser checks the rest.
SECRET_PATTERN = "^(" + "|".join(SECRET_KINDS) + "):"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from; never the secret itself. Resolved elsewhere, at call time."""
    kind: str       # env | file | keyring | prompt
    target: str     # variable name, path, "SERVICE/NAME", or the prompt label ("" by default)
    raw: str        # the reference as written

    @property
    def service(self) -> str | None:
        """keyring: the service part of SERVICE/NAME (everything before the last /)."""
        return self.target.rpartition("/")[0] if self.kind == "keyring" else None

    @property
    def username(self) -> str | None:
        """keyring: the name part of SERVICE/NAME (after the last /)."""
        return self.target.rpartition("/")[2] if self.kind == "keyring" else None

    def __str__(self) -> str:
        return self.raw


class NotAReference(ValueError):
    """The text is no reference at all (so, where a reference belongs, probably a secret value)."""


def parse_secret_ref(text: str) -> SecretRef:
    """Parse ``env:VAR``, ``file:PATH``, ``keyring:SERVICE/NAME`` or ``prompt:``.

    Raises NotAReference when the text is no reference, ValueError when it is a malformed one;
    neither message contains the text itself.
    """
    if not isinstance(text, str):
        raise NotAReference("not a string")
    kind, sep, target = text.partition(":")
    if not sep or kind.strip().lower() not in SECRET_KINDS:
        raise NotAReference("not a secret reference")
    if kind not in SECRET_KINDS:
        raise ValueError(f"reference kind {kind.strip().lower()}: is written in lower case")
    if kind == "env":
        if not _ENV_NAME.match(target):
            raise ValueError("env: needs an environment variable name (letters, digits, _), "
                             "e.g. env:MIRRORKIT_SQL_PASSWORD")
    elif kind == "file":
        if not target.strip() or target != target.strip() or has_control(target):
            raise ValueError("file: needs a path with no surrounding spaces, "
                             "e.g. file:/etc/mirrorkit/sa.password")
    elif kind == "keyring":
        service, slash, name = target.rpartition("/")
        if not slash or not service.strip() or not name.strip() or has_control(target):
            raise ValueError("keyring: needs SERVICE/NAME, e.g. keyring:mirrorkit/prod-master-key")
    elif kind == "prompt":
        if has_control(target):
            raise ValueError("prompt: takes an optional one-line label")
    return SecretRef(kind, target, text)


def has_control(text: str) -> bool:
    """Control characters and Unicode line/paragraph separators (what "\\t", "\\P" ... give in double quotes)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)
