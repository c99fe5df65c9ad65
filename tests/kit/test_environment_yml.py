"""environment.yml (conda users) is valid YAML and agrees with pyproject.toml, the pip source of truth:
every runtime dependency (and every test extra) is listed under its conda-forge name, with a lower
bound that pip's requirement accepts and no looser upper bound; conda-forge only; the ODBC stack
(unixODBC + FreeTDS) and the package itself (pip -e .) are there. No conda is needed to run this."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "environment.yml"

# PyPI name → conda-forge name, where they differ. conda-forge publishes every current dependency under
# its PyPI name (checked on anaconda.org for python-tds, pyyaml, pyopenssl, pymssql, sqlglot); add the
# exceptions here (e.g. "tables": "pytables").
PIP_TO_CONDA: dict[str, str] = {}

_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*(?:#.*)?$")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _environment() -> dict:
    return yaml.safe_load(ENV_FILE.read_text(encoding="utf-8"))


def _conda_specs() -> dict[str, SpecifierSet]:
    """Conda dependencies by normalised name, their match specs as PEP 440 specifier sets
    (`python=3.12` is conda's fuzzy `==3.12.*`)."""
    out: dict[str, SpecifierSet] = {}
    for dep in _environment()["dependencies"]:
        if isinstance(dep, dict):
            continue
        m = _SPEC.match(dep)
        assert m, f"cannot read the conda spec {dep!r}"
        name, constraint = m.group(1), m.group(2).replace(" ", "")
        parts = []
        for part in filter(None, constraint.split(",")):
            if re.match(r"^=[^=]", part):
                part = "=" + part + ("" if part.endswith("*") else ".*")
            parts.append(part)
        key = canonicalize_name(name)
        assert key not in out, f"{name} is listed twice"
        out[key] = SpecifierSet(",".join(parts))
    return out


def _pip_section() -> list[str]:
    for dep in _environment()["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return list(dep["pip"])
    return []


def _lower(spec: SpecifierSet) -> Optional[Version]:
    bounds = [Version(s.version) for s in spec if s.operator in (">=", "==", "~=") and "*" not in s.version]
    bounds += [Version(s.version.rstrip(".*")) for s in spec if s.operator == "==" and "*" in s.version]
    return max(bounds) if bounds else None


def _upper(spec: SpecifierSet) -> Optional[Version]:
    bounds = [Version(s.version) for s in spec if s.operator in ("<", "<=")]
    return min(bounds) if bounds else None


def _requirements(group: str) -> list[Requirement]:
    if group == "lab":
        lab = tomllib.loads((ROOT / "lab" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        return [Requirement(d) for d in lab["dependencies"] if canonicalize_name(Requirement(d).name) != "mirrorkit"]
    project = _pyproject()["project"]
    deps = project["dependencies"] if group == "runtime" else project["optional-dependencies"][group]
    return [Requirement(d) for d in deps]


def test_environment_yml_is_valid_yaml_with_the_conda_keys():
    env = _environment()
    assert isinstance(env, dict)
    assert env.get("name") == "mirrorkit"
    assert set(env) <= {"name", "channels", "dependencies", "variables"}, sorted(env)
    assert isinstance(env["dependencies"], list) and env["dependencies"]
    _conda_specs()          # every entry is a readable match spec


def test_conda_forge_only():
    channels = _environment()["channels"]
    assert channels[0] == "conda-forge"
    assert "nodefaults" in channels
    assert "defaults" not in channels and not any("anaconda" in c for c in channels), channels


def _check(req: Requirement, specs: dict[str, SpecifierSet]) -> None:
    name = canonicalize_name(req.name)
    conda = canonicalize_name(PIP_TO_CONDA.get(name, name))
    assert conda in specs, f"{req} (pyproject.toml) is missing from environment.yml as {conda}"
    spec = specs[conda]
    pip_lower, env_lower = _lower(req.specifier), _lower(spec)
    if pip_lower is not None:
        assert env_lower is not None, f"{conda}: environment.yml has no lower bound, pyproject.toml has {req}"
        assert env_lower >= pip_lower, f"{conda}: environment.yml allows {spec}, pyproject.toml needs {req}"
    if env_lower is not None:
        assert req.specifier.contains(env_lower, prereleases=True), \
            f"{conda}: the lower bound of {spec} is outside {req}"
    pip_upper = _upper(req.specifier)
    if pip_upper is not None:
        env_upper = _upper(spec)
        assert env_upper is not None and env_upper <= pip_upper, \
            f"{conda}: pyproject.toml caps it ({req}), environment.yml allows {spec or 'any version'}"


@pytest.mark.parametrize("req", _requirements("runtime"), ids=str)
def test_every_runtime_dependency_is_listed_with_a_compatible_range(req):
    _check(req, _conda_specs())


@pytest.mark.parametrize("req", _requirements("test"), ids=str)
def test_every_test_dependency_is_listed_with_a_compatible_range(req):
    _check(req, _conda_specs())


@pytest.mark.parametrize("req", _requirements("lab"), ids=str)
def test_every_lab_dependency_is_listed_with_a_compatible_range(req):
    _check(req, _conda_specs())


def test_python_version_satisfies_requires_python():
    specs = _conda_specs()
    assert "python" in specs
    version = _lower(specs["python"])
    assert version is not None
    assert SpecifierSet(_pyproject()["project"]["requires-python"]).contains(version), version


def test_odbc_stack_kernel_and_package_are_there():
    specs = _conda_specs()
    for name in ("unixodbc", "freetds", "pyodbc", "ipykernel", "jupyterlab", "keyring", "pip"):
        assert name in specs, f"environment.yml lacks {name}"
    pip = _pip_section()
    assert "-e ." in [p.split("#")[0].strip() for p in pip], f"the pip section must install the package itself: {pip}"
    assert "-e ./lab" in [p.split("#")[0].strip() for p in pip], f"the pip section must install the lab: {pip}"
    assert all(p.strip().startswith("-e") for p in pip), \
        f"only the package itself comes from pip (the rest is on conda-forge): {pip}"


def test_driver_registration_is_documented():
    text = ENV_FILE.read_text(encoding="utf-8")
    assert "odbcinst -i -d" in text
    assert "ODBCSYSINI" in text
    assert "libtdsodbc.so" in text
