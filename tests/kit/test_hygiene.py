"""The committed notebooks are clean templates (reference §4.2 item 4, §4.3): no outputs or execution
counts, exactly one `parameters` cell whose every parameter papermill can inspect, no papermill or runner
leftovers, kernelspec python3, cell ids, valid nbformat — and identical to what tools/build_notebooks.py
generates."""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import nbformat
import pytest

from mirrorkit.config import parameters as params
from mirrorkit.execution import runner

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
# all that mirrorkit.execution.runner passes (verify has none of the first three): the parameter file by
# path and the digest of its bytes, never its values (tests/kit/test_runner_contract.py)
RUN_PARAMETERS = ("target", "mode", "certificate_dir", "parameters_file", "parameters_sha256", "change_id",
                  "interactive")
PAPERMILL_LEFTOVER_TAGS = ("injected-parameters", "papermill-error-cell-tag", "mirrorkit-outcome")


def test_the_four_notebooks_are_there():
    assert NOTEBOOKS == ["inbound", "outbound", "verify", "witness"]
    assert set(runner.STEPS) == set(NOTEBOOKS)


def _raw(name: str) -> dict:
    import json
    return json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text(encoding="utf-8"))


def _nb(name: str):
    return nbformat.read(str(NOTEBOOK_DIR / f"{name}.ipynb"), as_version=4)


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{len(cells)} cells tagged parameters"
    assert cells[0].cell_type == "code"
    return cells[0]


def _declared(source: str) -> dict[str, int]:
    """name → line of every top-level assignment in the parameters cell."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node.lineno
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.lineno
    return out


def _comments(source: str) -> dict[int, str]:
    return {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_outputs_and_no_execution_counts(name):
    for i, cell in enumerate(_raw(name)["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name} cell {i} has outputs"
            assert cell["execution_count"] is None, f"{name} cell {i} has execution_count {cell['execution_count']}"
        assert "outputs" not in cell or cell["cell_type"] == "code"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_exactly_one_parameters_cell_and_no_leftovers(name):
    nb = _nb(name)
    _parameters_cell(nb)
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        for tag in PAPERMILL_LEFTOVER_TAGS:
            assert tag not in tags, f"{name} cell {i} is tagged {tag}"
        assert "papermill" not in cell.get("metadata", {}), f"{name} cell {i} has metadata.papermill"
        assert "execution" not in cell.get("metadata", {}), f"{name} cell {i} has execution timings"
    for key in ("papermill", "mirrorkit", "widgets"):
        assert key not in nb.metadata, f"{name} has metadata.{key}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_kernelspec_is_python3(name):
    ks = _nb(name).metadata.get("kernelspec", {})
    assert ks.get("name") == "python3", ks
    assert ks.get("language") == "python", ks


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_cell_ids_present_and_nbformat_valid(name):
    raw = _raw(name)
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5), "cell ids need nbformat 4.5"
    ids = [c.get("id") for c in raw["cells"]]
    assert all(ids), f"{name}: cells without id"
    assert len(set(ids)) == len(ids), f"{name}: duplicate cell ids"
    text = (NOTEBOOK_DIR / f"{name}.ipynb").read_text(encoding="utf-8")
    nbformat.validate(nbformat.reads(text, as_version=4))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_parameter_is_inspectable_by_papermill(name):
    import papermill
    source = _parameters_cell(_nb(name)).source
    declared = _declared(source)
    inspected = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert sorted(inspected) == sorted(declared), \
        f"{name}: papermill sees {sorted(inspected)}, the cell declares {sorted(declared)}"
    comments = _comments(source)
    for param, line in declared.items():
        help_text = comments.get(line, "")
        assert "=" not in help_text, f"{name}: the help of {param} contains '=' (papermill then drops it)"
        assert inspected[param]["inferred_type_name"] not in ("None", ""), (param, inspected[param])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_value_the_runner_passes_is_a_declared_parameter(name):
    """The guard refuses undeclared parameters; the runner's must all be declared, and no configuration
    key is a notebook parameter (the kit reads the parameter file itself)."""
    from mirrorkit.notebook import runbook
    declared = set(_declared(_parameters_cell(_nb(name)).source))
    expected = set(RUN_PARAMETERS)
    if name == "verify":
        expected -= {"target", "mode", "certificate_dir"}
    assert expected <= declared, f"{name} does not declare {sorted(expected - declared)}"
    assert not declared & set(params.NOTEBOOK_PARAMETERS), f"{name} declares configuration keys"
    assert set(runbook.arguments(name)) == declared, "the guard lets through exactly the declared parameters"


def test_build_notebooks_check_passes():
    proc = subprocess.run([sys.executable, "tools/build_notebooks.py", "--check"], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
