"""Errors a person running a notebook can act on, shown as one line instead of a traceback.

Every exception a kit notebook shows goes through here, redacted: the kit's own errors as one line,
any other as IPython's usual traceback with every line redacted (a driver error may echo a statement
and its password).
"""
from __future__ import annotations

from ..access.connection import ConnectionFailed
from ..access.credentials import REGISTRY, SecretError
from ..config.parameters import ParameterError
from ..core.artifacts import ArtifactError


class RunbookError(Exception):
    """A problem the person running the notebook can act on; shown without a traceback."""


PLAIN = (RunbookError, ParameterError, SecretError, ConnectionFailed, ArtifactError)


def show_plainly() -> None:
    """Show the kit's errors as a message, not a traceback, and every error redacted (the cell still fails)."""
    try:
        ip = get_ipython()  # noqa: F821 - defined inside IPython
    except NameError:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        # IPython drops what a custom handler returns: show the "traceback" ourselves, as an error
        # output (ename, evalue) that papermill and nbconvert read
        from .display import SHOWN
        evalue = REGISTRY.redact(str(value))
        if issubclass(etype, PLAIN):
            lines = [REGISTRY.redact(f"{etype.__name__}: {value}")]
        else:
            lines = [REGISTRY.redact(line) for line in
                     shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)]
        SHOWN.add(f"error {etype.__name__}", "\n".join([evalue, *lines]))
        shell._showtraceback(etype, evalue, lines)
        return lines
    ip.set_custom_exc((Exception,), handler)
