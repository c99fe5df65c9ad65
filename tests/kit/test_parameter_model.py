"""The parameter model is declared once (mirrorkit/config/model.py); the validator, the docs table and
parameters/schema.json come from it and must not drift apart."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from mirrorkit.config import model, parameters as params, schema
from mirrorkit.config.model import REQUIRED, SCHEMA_KEYS, keys_of, walk
from mirrorkit.config.parameters import ParameterError, from_values, load, load_bytes

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "parameters.md"
SCHEMA_FILE = ROOT / "parameters" / "schema.json"
PARAMETER_FILES = sorted((ROOT / "parameters").glob("*.yaml"))
SHIPPED = [ROOT / "parameters" / "lab.yaml", ROOT / "parameters" / "example-prod.yaml"]


def minimal(**overrides):
    base = {
        "environment": "test",
        "instances": [{"name": "SQL01", "server": "sql01.example.com,1433", "role": "partner"},
                      {"name": "SQL02", "server": "sql02.example.com,1433", "role": "partner"}],
        "connection": {"authentication": "windows"},
    }
    base.update(overrides)
    return base


@pytest.fixture(scope="module")
def validator():
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


# -- the generated files are current ---------------------------------------------------------------

def test_schema_json_is_what_the_model_generates():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema.schema_text(), \
        "parameters/schema.json is stale: run python tools/build_parameter_docs.py"


def test_docs_table_is_what_the_model_generates():
    doc = DOCS.read_text(encoding="utf-8")
    assert doc.count(schema.TABLE_BEGIN) == 1 and doc.count(schema.TABLE_END) == 1
    assert schema.with_reference_table(doc) == doc, \
        "the table in docs/parameters.md is stale: run python tools/build_parameter_docs.py"


def test_build_parameter_docs_check_passes():
    proc = subprocess.run([sys.executable, "tools/build_parameter_docs.py", "--check"], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- every declared key, in every derived place ----------------------------------------------------

def test_schema_keys_are_derived_from_the_declarations():
    assert params.SCHEMA_KEYS is model.SCHEMA_KEYS
    assert SCHEMA_KEYS == tuple(path for path, _ in walk())
    assert params.NOTEBOOK_PARAMETERS == tuple(keys_of(model.Environment))
    assert len(set(SCHEMA_KEYS)) == len(SCHEMA_KEYS)
    # no module of the validator lists keys by hand any more
    for path in (ROOT / "mirrorkit" / "config").glob("*.py"):
        assert not re.search(r"_(INSTANCE|ENDPOINT|CERT|PKB|LOGIN|CONN|SECRET|VERIFY)_KEYS\b", path.read_text()), path


def test_every_key_is_in_the_docs_table():
    table = DOCS.read_text(encoding="utf-8").split(schema.TABLE_BEGIN)[1].split(schema.TABLE_END)[0]
    documented = re.findall(r"^\| `([a-z_.\[\]]+)` \|", table, re.M)
    assert documented == list(SCHEMA_KEYS)


def _schema_at(document: dict, path: str) -> dict:
    node = document
    for part in path.replace("[]", ".[]").split("."):
        while "$ref" in node:
            node = document["$defs"][node["$ref"].rsplit("/", 1)[1]]
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def test_every_key_is_in_schema_json_with_its_declaration():
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    for path, key in walk():
        prop = _schema_at(document, path)
        assert prop["description"].startswith(key.help), path
        if key.kind == "choice":
            assert prop["enum"] == list(key.choices), path
        if key.kind == "integer":
            assert (prop["minimum"], prop["maximum"]) == (key.lo, key.hi), path
        if key.kind == "secret":
            assert prop["pattern"] == "^(env|file|keyring|prompt):", path
        if key.default not in (REQUIRED, model.OPTIONAL, None) and key.kind not in ("section", "items", "overrides"):
            assert prop["default"] == key.default, path


def _sections(cls: type) -> set[type]:
    inner = {k.section for k in keys_of(cls).values() if k.section is not None}
    return inner.union(*(_sections(c) for c in inner)) if inner else set()


def test_every_object_in_schema_json_is_closed():
    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert set(document["$defs"]) == {c.__name__ for c in _sections(model.Environment)}
    for obj in [document, *document["$defs"].values()]:
        assert obj["additionalProperties"] is False


def test_every_key_has_help_and_its_default_passes_its_own_check():
    explicit: dict = {}
    for path, key in walk():
        assert key.help.strip(), path
        if key.kind in ("section", "items", "overrides") or key.default in (REQUIRED, model.OPTIONAL, None):
            continue
        if path.startswith("instances[]"):
            continue
        section, _, name = path.rpartition(".")
        target = explicit
        for part in filter(None, section.split(".")):
            target = target.setdefault(part, {})
        target[name] = key.default
    # writing every default explicitly gives the same values as writing none
    explicit["connection"].update(authentication="windows")
    assert from_values(minimal(**explicit)).digest() == from_values(minimal()).digest()


# -- the shipped files ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PARAMETER_FILES, ids=[p.stem for p in PARAMETER_FILES])
def test_parameter_files_name_the_schema_on_their_first_line(path):
    assert path.read_text(encoding="utf-8").splitlines()[0] == schema.SCHEMA_COMMENT


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_files_validate_against_schema_json(path, validator):
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors, errors
    load(path)


@pytest.mark.parametrize("change, where", [
    ({"endpoint": {"port": 80}}, "endpoint"),
    ({"endpoint": {"encryption": "mandatory"}}, "endpoint"),
    ({"endpoint": {"prot": 5022}}, "endpoint"),
    ({"secrets": {"master_key_password": "Sup3r-Secret!"}}, "secrets"),
    ({"environment": "..."}, "environment"),
    ({"connection": {"authentication": "windows", "tds_version": "7"}}, "connection"),
    ({"certificate": {"lifetime_days": 0}}, "certificate"),
    ({"unknown": 1}, ""),
])
def test_schema_json_and_the_validator_refuse_the_same_value(change, where, validator):
    data = minimal(**change)
    assert list(validator.iter_errors(data)), f"schema.json accepts {change}"
    with pytest.raises(ParameterError) as info:
        from_values(data)
    assert all(p.path.startswith(where) for p in info.value.problems), str(info.value)


def test_schema_json_accepts_what_the_validator_accepts(validator):
    for data in (minimal(), minimal(topology="mirroring", endpoint={"encryption": "disabled"}),
                 minimal(certificate={"private_key_backup": {"directory": "/pvk", "password": "env:PW"}},
                         secrets={"master_key_password": "keyring:a/b/c"})):
        from_values(data)
        assert not list(validator.iter_errors(data)), data


# -- load_bytes ------------------------------------------------------------------------------------

def test_load_bytes_validates_the_bytes_given():
    path = SHIPPED[0]
    env = load_bytes(path.read_bytes(), "hashed-copy")
    assert env == load(path) and env.digest() == load(path).digest() and env.source == "hashed-copy"
    with pytest.raises(ParameterError) as info:
        load_bytes(b"environment: lab\ninstances: []\n", "bytes")
    assert str(info.value) == "bytes: instances: is empty (line 2); list the instances, each with name:, server: and role:"
    with pytest.raises(ParameterError, match=r"^x: is not UTF-8 text \(byte 0\)"):
        load_bytes(b"\xff\xfe", "x")


def test_no_config_module_is_named_after_a_standard_library_module():
    names = {p.stem for p in (ROOT / "mirrorkit" / "config").glob("*.py")} - {"__init__"}
    assert not names & set(sys.stdlib_module_names), names & set(sys.stdlib_module_names)
