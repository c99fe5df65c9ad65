"""The papermill trust boundary: what papermill injects is checked before it runs.

papermill writes every parameter into an injected cell as Python code (`# Parameters` and one
assignment per parameter), and with `-f FILE` every top-level key of the file becomes code. The
runbook notebooks receive their configuration as one value, `parameters_file`, and read and
validate that file themselves. `install()` runs in the first cell, before papermill's injected
cell, and registers an IPython input transformer (a public hook) that lets the injected cell run
only when it assigns literal values to the notebook's declared parameters; anything else — a
configuration key, an unknown name, code — is replaced, unrun, by a cell that raises the reason.
"""
from __future__ import annotations

import ast
from typing import Any, Optional

from ..config.parameters import NOTEBOOK_PARAMETERS

MARKER = "# Parameters"        # the first line of papermill's injected cell (papermill.translators)

_installed: dict[str, Any] = {"allowed": (), "refusal": None, "injected": None}


def install(allowed: tuple[str, ...]) -> None:
    """Guard the cells that follow; `allowed` are the names the parameters cell declares."""
    _installed["allowed"] = tuple(allowed)
    try:
        ip = get_ipython()  # noqa: F821 - defined inside IPython
    except NameError:
        return
    if _transform not in ip.input_transformers_post:
        ip.input_transformers_post.append(_transform)


def injected() -> Optional[dict[str, Any]]:
    """The parameters papermill injected and the guard let through (None: nothing was injected)."""
    return _installed["injected"]


def refuse() -> None:
    from .errors import RunbookError
    raise RunbookError(_installed["refusal"] or "the injected parameters were refused")


def _transform(lines: list[str]) -> list[str]:
    if not lines or lines[0].rstrip("\r\n") != MARKER:
        return lines
    problem, values = check("".join(lines), _installed["allowed"])
    if problem is None:
        _installed["injected"] = values
        return lines
    _installed["refusal"] = problem
    return ["import mirrorkit.notebook.guard as _mirrorkit_guard\n", "_mirrorkit_guard.refuse()\n"]


def check(source: str, allowed: tuple[str, ...]) -> tuple[Optional[str], dict[str, Any]]:
    """(None, values) when `source` only assigns literals to allowed names, else (why not, {})."""
    howto = ("the kit reads the parameter file itself: run papermill NOTEBOOK OUT -p parameters_file "
             "parameters/<env>.yaml -p target NAME -p mode plan|apply (or mirrorkit run parameters/<env>.yaml)")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return f"the injected parameters are not plain assignments, so none of them was run; {howto}", {}
    values: dict[str, Any] = {}
    config, unknown = [], []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            return (f"the injected parameters hold code that is not a parameter assignment (line {node.lineno}), so "
                    f"none of them was run — a parameter file given with papermill -f becomes code; {howto}"), {}
        name = node.targets[0].id
        try:
            values[name] = ast.literal_eval(node.value)
        except ValueError:
            return f"the injected parameter {name} is not a plain value, so none of them was run; {howto}", {}
        if name in NOTEBOOK_PARAMETERS:
            config.append(name)
        elif name not in allowed:
            unknown.append(name)
    if config:
        return (f"configuration keys were injected as parameters ({', '.join(config)}), as papermill -f FILE does; "
                f"nothing was run or sent; {howto}"), {}
    if unknown:
        return (f"unknown parameter(s) {', '.join(unknown)}; this notebook takes {', '.join(allowed)}; "
                "nothing was run or sent"), {}
    return None, values
