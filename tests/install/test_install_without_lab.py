"""`pip install .` on a DBA's bastion: the kit alone, without the stand-in SQL Server or sqlglot.

A fresh virtual environment gets the package as a wheel would install it (no extras, not editable);
the kit imports, its commands answer, and `mirrorkit lab` says how to install the lab.
"""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    # a copy of the tree, so that the build leaves nothing behind in the checkout
    src = tmp_path_factory.mktemp("src")
    subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True)
    subprocess.run(f"git -C {ROOT} ls-files -z | xargs -0 cp --parents -t {src}", shell=True, check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def run(python: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_kit_imports_and_its_commands_answer_without_the_lab(bare):
    probe = run(bare, "-c", "import importlib.util as u, mirrorkit, mirrorkit.notebook.runbook, "
                            "mirrorkit.execution.runner; "
                            "print(u.find_spec('sqlglot') is None, u.find_spec('mirrorkit_lab') is None)")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["True", "True"], "sqlglot or the lab came with pip install ."
    cli = bare.parent / "mirrorkit"
    helped = subprocess.run([str(cli), "verify", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "parameter file" in helped.stdout, helped.stderr


def test_lab_commands_say_how_to_install_the_lab(bare, tmp_path):
    cli = bare.parent / "mirrorkit"
    for args in (["lab", "up", str(ROOT / "parameters" / "lab.yaml")], ["demo"], ["lab", "status"]):
        done = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "pip install 'mirrorkit[lab]'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / ".mirrorkit-lab").exists()
