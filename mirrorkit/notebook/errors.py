"""Errors a person running a notebook can act on, shown as one line instead of a traceback."""
from __future__ import annotations

from ..access.connection import ConnectionFailed
from ..access.credentials import REGISTRY, SecretError
from ..config.parameters import ParameterError
from ..core.artifacts import ArtifactError


class RunbookError(Exception):
    """A problem the person running the notebook can act on; shown without a traceback."""


PLAIN = (RunbookError, ParameterError, SecretError, ConnectionFailed, ArtifactError)


def show_plainly() -> None:
    """Show the kit's errors as a message, not a traceback (the cell still fails)."""
    try:
        ip = get_ipython()  # noqa: F821 - defined inside IPython
    except NameError:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        # IPython drops what a custom handler returns: show a one-line "traceback" ourselves, as an
        # error output (ename, evalue) that papermill and nbconvert read
        text = REGISTRY.redact(f"{etype.__name__}: {value}")
        shell._showtraceback(etype, REGISTRY.redact(str(value)), [text])
        return [text]
    ip.set_custom_exc(PLAIN, handler)
