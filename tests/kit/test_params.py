"""mirrorkit.params: the parameter-file loader and validator (schema: docs/parameters.md)."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirrorkit.config import parameters as params
from mirrorkit.config.parameters import (NOTEBOOK_PARAMETERS, SCHEMA_KEYS, ConnectionSettings, ParameterError, SecretRef,
                              from_values, load)

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "parameters" / "lab.yaml"
PROD = ROOT / "parameters" / "example-prod.yaml"
BAD = Path(__file__).resolve().parent / "bad_params"
BAD_FILES = sorted(BAD.glob("*.yaml"))


def values(**overrides):
    """A minimal valid set of notebook values (mirroring, two partners, Windows auth)."""
    base = {
        "environment": "test",
        "instances": [
            {"name": "SQL01", "server": "sql01.example.com,1433", "role": "partner"},
            {"name": "SQL02", "server": "sql02.example.com,1433", "role": "partner"},
        ],
        "connection": {"authentication": "windows"},
    }
    base.update(overrides)
    return base


def problems_of(fn, *args):
    with pytest.raises(ParameterError) as info:
        fn(*args)
    return info.value


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The shipped files
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [LAB, PROD], ids=["lab", "example-prod"])
def test_shipped_files_load(path):
    env = load(path)
    assert env.source == str(path)
    assert env.topology == "mirroring"
    assert len(env.partners) == 2 and env.witness is not None


def test_lab_file_values_and_defaults():
    env = load(LAB)
    assert env.environment == "lab"
    assert [(i.name, i.host, i.port, i.role) for i in env.instances] == [
        ("PARTNER_A", "127.0.0.11", 1433, "partner"),
        ("PARTNER_B", "127.0.0.12", 1433, "partner"),
        ("WITNESS", "127.0.0.13", 1433, "witness"),
    ]
    assert [env.endpoint_url(i) for i in env.instances] == [
        "TCP://127.0.0.11:5022", "TCP://127.0.0.12:5022", "TCP://127.0.0.13:5022"]
    assert env.endpoint.name == "Mirroring" and env.endpoint.port == 5022
    # defaults applied
    assert env.endpoint == params.EndpointSettings()
    assert env.certificate == params.CertificateSettings()
    assert env.logins == params.LoginSettings()
    assert env.verify == params.VerifySettings(expiry_warning_days=30, errorlog_hours=24)
    assert env.certificate.lifetime_days == 1095 and env.certificate.backdate_hours == 24
    assert env.endpoint.encryption == "required" and env.endpoint.algorithm == "aes"
    c = env.connection
    assert (c.driver, c.authentication, c.user, c.encrypt, c.tds_version) == (
        "FreeTDS", "sql", "sa", "optional", "7.4")
    assert c.password == SecretRef("file", ".mirrorkit-lab/sa.password", "file:.mirrorkit-lab/sa.password")
    assert c.trust_server_certificate is False and c.login_timeout == 15 and c.is_freetds
    assert env.secrets.master_key_password.kind == "file"
    assert env.secrets.master_key_password.target == ".mirrorkit-lab/secrets/master-key.password"
    assert all(i.connection == c for i in env.instances)


def test_lab_file_still_serves_the_lab():
    from mirrorkit_lab.config import load_instances
    specs = load_instances(LAB)
    env = load(LAB)
    assert [(s.name, s.host, s.port) for s in specs] == [(i.name, i.host, i.port) for i in env.instances]


def test_example_prod_values():
    env = load(PROD)
    c = env.connection
    assert c.driver == "ODBC Driver 18 for SQL Server"
    assert c.authentication == "windows" and c.encrypt == "yes" and c.user is None and c.password is None
    assert c.host_name_in_certificate is None and c.trust_server_certificate is False
    witness = env.witness
    assert (witness.host, witness.port) == ("10.20.30.41", 1433)
    assert witness.connection.host_name_in_certificate == "sqlwit01.corp.example.com"
    assert env.endpoint_url(witness) == "TCP://sqlwit01.corp.example.com:5022"
    assert witness.connection.authentication == "windows"           # the rest is inherited
    assert env.endpoint_role(witness) == "WITNESS"
    assert env.secrets.master_key_password.kind == "keyring"
    assert env.secrets.master_key_password.service == "mirrorkit-prod"
    assert env.certificate.private_key_backup.password.kind == "env"
    text = PROD.read_text()
    # SQL authentication is shown as a commented alternative
    assert re.search(r"^\s*#\s*authentication: sql", text, re.M)
    assert re.search(r"^\s*#\s*password: 'env:", text, re.M)


def test_notebook_parameters_are_the_top_level_keys():
    assert NOTEBOOK_PARAMETERS == ("environment", "topology", "instances", "endpoint", "certificate", "logins",
                                   "connection", "secrets", "verify")
    assert set(yaml.safe_load(LAB.read_text())) == set(NOTEBOOK_PARAMETERS)


def test_schema_keys_match_the_documented_table():
    doc = (ROOT / "docs" / "parameters.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.\[\]]+)` \|", doc, re.M))
    # `instances[].connection` is documented as a mapping of connection overrides
    assert documented == set(SCHEMA_KEYS)


def test_lab_and_values_agree():
    """papermill hands the notebook the same values: from_values gives the same environment."""
    env = load(LAB)
    nb = from_values(yaml.load(LAB.read_text(), Loader=params._PapermillLoader))
    assert nb == env and nb.digest() == env.digest()
    assert nb.source == "<notebook parameters>"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def names(instances):
    return [i.name for i in instances]


def test_peers_of_mirroring_with_witness():
    env = load(LAB)
    assert names(env.peers_of("PARTNER_A")) == ["PARTNER_B", "WITNESS"]
    assert names(env.peers_of("partner_b")) == ["PARTNER_A", "WITNESS"]
    assert names(env.peers_of("WITNESS")) == ["PARTNER_A", "PARTNER_B"]
    assert names(env.partners) == ["PARTNER_A", "PARTNER_B"] and env.witness.name == "WITNESS"
    assert env.replicas == ()


def test_peers_of_mirroring_without_witness():
    env = from_values(values())
    assert env.topology == "mirroring" and env.witness is None
    assert names(env.peers_of("SQL01")) == ["SQL02"]
    assert names(env.peers_of("SQL02")) == ["SQL01"]


def test_peers_of_availability_group():
    env = from_values(values(instances=[
        {"name": f"R{i}", "server": f"r{i}.example.com,1433", "role": "replica"} for i in range(1, 5)]))
    assert env.topology == "availability_group"
    assert names(env.replicas) == ["R1", "R2", "R3", "R4"] and env.partners == () and env.witness is None
    for r in env.instances:
        assert names(env.peers_of(r)) == [n for n in ["R1", "R2", "R3", "R4"] if n != r.name]
        assert env.endpoint_role(r) == "ALL"


def test_endpoint_role():
    env = load(LAB)
    assert [env.endpoint_role(n) for n in ("PARTNER_A", "PARTNER_B", "WITNESS")] == ["ALL", "ALL", "WITNESS"]
    env = from_values(values(endpoint={"partner_role": "partner"}))
    assert env.endpoint_role("SQL01") == "PARTNER"


def test_instance_lookup_is_case_insensitive_and_names_the_known():
    env = load(LAB)
    assert env.instance("partner_a").name == "PARTNER_A"
    assert env.instance(env.instances[2]) is env.instances[2]
    err = problems_of(env.instance, "NOPE")
    assert "'NOPE'" in str(err) and "PARTNER_A, PARTNER_B, WITNESS" in str(err)


def test_templates_expand():
    env = from_values(values(
        certificate={"name": "cert_{instance}", "subject": "{instance} {{dbm}}"},
        logins={"login": "L_{peer}", "user": "U_{peer}"},
    ))
    assert env.certificate_name("sql01") == "cert_SQL01"
    assert env.certificate_subject("SQL01") == "SQL01 {dbm}"
    assert env.login_name("SQL02") == "L_SQL02" and env.user_name("SQL02") == "U_SQL02"
    env = load(LAB)
    assert env.certificate_name("WITNESS") == "WITNESS_dbm_cert"
    assert env.certificate_subject("WITNESS") == "WITNESS DATABASE_MIRRORING endpoint"
    assert env.login_name("PARTNER_B") == "PARTNER_B_dbm_login"
    assert env.user_name("PARTNER_B") == "PARTNER_B_dbm_user"


def test_named_instances():
    env = from_values(values(instances=[
        {"name": "HOST1\\PROD", "server": "host1.example.com\\PROD", "role": "partner"},
        {"name": "HOST2\\PROD", "server": "host2.example.com\\PROD,50123", "role": "partner",
         "endpoint_port": 7022},
    ]))
    a, b = env.instances
    assert (a.host, a.port, a.instance_name) == ("host1.example.com", None, "PROD")
    assert (b.host, b.port, b.instance_name) == ("host2.example.com", 50123, "PROD")
    assert env.endpoint_url(a) == "TCP://host1.example.com:5022"
    assert env.endpoint_url(b) == "TCP://host2.example.com:7022"
    # SQL Server logins cannot contain a backslash: HOST\INSTANCE becomes HOST_INSTANCE
    assert env.login_name(a) == "HOST1_PROD_dbm_login" and env.user_name(b) == "HOST2_PROD_dbm_user"
    assert env.certificate_name(a) == "HOST1\\PROD_dbm_cert"


def test_endpoint_url_address_and_port_overrides():
    env = from_values(values(endpoint={"port": 7022}, instances=[
        {"name": "SQL01", "server": "10.0.0.1,1433", "role": "partner", "endpoint_address": "sql01-dbm.example.com"},
        {"name": "SQL02", "server": "10.0.0.2,1433", "role": "partner", "endpoint_address": "fd00::2",
         "endpoint_port": 7023},
    ]))
    assert env.endpoint_url("SQL01") == "TCP://sql01-dbm.example.com:7022"
    assert env.endpoint_url("SQL02") == "TCP://[fd00::2]:7023"


def test_per_instance_connection_overrides_merge():
    env = from_values(values(
        connection={"authentication": "sql", "user": "admin", "password": "env:SQL_PW", "login_timeout": 30},
        instances=[
            {"name": "SQL01", "server": "sql01.example.com,1433", "role": "partner",
             "connection": {"password": "keyring:mirrorkit/sql01", "encrypt": "strict"}},
            {"name": "SQL02", "server": "sql02.example.com,1433", "role": "partner",
             "connection": {"authentication": "windows"}},
        ]))
    a, b = env.instances
    assert a.connection == ConnectionSettings(authentication="sql", user="admin", login_timeout=30, encrypt="strict",
                                              password=SecretRef("keyring", "mirrorkit/sql01",
                                                                 "keyring:mirrorkit/sql01"))
    assert a.connection.password.service == "mirrorkit" and a.connection.password.username == "sql01"
    assert b.connection.authentication == "windows" and b.connection.login_timeout == 30
    assert env.connection.password.raw == "env:SQL_PW"


def test_sql_auth_requirement_is_per_instance():
    # the file's connection has no password, but every instance that uses sql authentication gives one
    env = from_values(values(
        connection={"authentication": "sql", "user": "admin"},
        instances=[
            {"name": "SQL01", "server": "sql01.example.com,1433", "role": "partner",
             "connection": {"password": "env:PW1"}},
            {"name": "SQL02", "server": "sql02.example.com,1433", "role": "partner",
             "connection": {"authentication": "windows"}},
        ]))
    assert env.instances[0].connection.password.target == "PW1"
    err = problems_of(from_values, values(connection={"authentication": "windows"}, instances=[
        {"name": "SQL01", "server": "sql01.example.com,1433", "role": "partner",
         "connection": {"authentication": "sql", "user": "u"}},
        {"name": "SQL02", "server": "sql02.example.com,1433", "role": "partner"}]))
    assert [p.path for p in err.problems] == ["instances[0].connection.password"]


def test_secret_references():
    assert params.parse_secret_ref("env:MIRRORKIT_PW") == SecretRef("env", "MIRRORKIT_PW", "env:MIRRORKIT_PW")
    assert params.parse_secret_ref("file:/etc/pw").target == "/etc/pw"
    ref = params.parse_secret_ref("keyring:https://vault/x/sa")
    assert (ref.service, ref.username) == ("https://vault/x", "sa")
    assert params.parse_secret_ref("prompt:").kind == "prompt"
    assert params.parse_secret_ref("prompt:SQL01 sa password").target == "SQL01 sa password"
    for bad in ("env:", "env:1X", "ENV:X", "file:", "keyring:x", "keyring:/x", "plain"):
        with pytest.raises(ValueError) as info:
            params.parse_secret_ref(bad)
        if len(bad) > 5:                        # the message names the kind (env:), never what follows
            assert bad not in str(info.value)
    env = from_values(values(connection={"authentication": "sql", "user": "u", "password": "prompt:"}))
    assert env.connection.password.kind == "prompt" and str(env.connection.password) == "prompt:"


def test_algorithm_is_none_with_encryption_disabled():
    env = from_values(values(endpoint={"encryption": "disabled"}))
    assert env.endpoint.algorithm is None
    env = from_values(values(endpoint={"algorithm": "AES  RC4", "encryption": "SUPPORTED"}))
    assert (env.endpoint.algorithm, env.endpoint.encryption) == ("aes rc4", "supported")


def test_private_key_backup():
    env = from_values(values(certificate={"private_key_backup": {"directory": "/var/opt/mssql/pvk",
                                                                 "password": "env:PVK_PW"}}))
    assert env.certificate.private_key_backup == params.PrivateKeyBackup(
        "/var/opt/mssql/pvk", SecretRef("env", "PVK_PW", "env:PVK_PW"))
    assert from_values(values()).certificate.private_key_backup is None


# ---------------------------------------------------------------------------------------------
# Digest
# ---------------------------------------------------------------------------------------------

def reorder(value):
    if isinstance(value, dict):
        return {k: reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reorder(v) for v in value]
    return value


def test_digest_stable_under_key_reordering(tmp_path):
    env = load(LAB)
    data = yaml.load(LAB.read_text(), Loader=params._PapermillLoader)
    shuffled = write(tmp_path, yaml.safe_dump(reorder(data), sort_keys=False))
    assert list(yaml.safe_load(shuffled.read_text()))[0] == "verify"
    assert load(shuffled).digest() == env.digest()
    assert from_values(reorder(data)).digest() == env.digest()
    assert re.fullmatch(r"[0-9a-f]{64}", env.digest())


def test_digest_is_over_values_not_spelling():
    plain = from_values(values())
    explicit = from_values(values(endpoint={"name": "Mirroring", "port": 5022, "encryption": "required"},
                                  verify={"expiry_warning_days": 30}))
    assert plain.digest() == explicit.digest()
    assert from_values(values(endpoint={"port": 5023})).digest() != plain.digest()
    again = from_values(copy.deepcopy(values()), source="elsewhere")
    assert again.digest() == plain.digest()            # the source is not part of the values


# ---------------------------------------------------------------------------------------------
# Bad parameter files
# ---------------------------------------------------------------------------------------------

def expectations(path: Path):
    expects, secrets = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# expect: "):
            key, what, fix = (part.strip() for part in line[len("# expect: "):].split(" | "))
            expects.append((key, what, fix))
        elif line.startswith("# secret: "):
            secrets.append(line[len("# secret: "):])
    return expects, secrets


def test_enough_bad_parameter_files():
    assert len(BAD_FILES) >= 20
    for path in BAD_FILES:
        assert expectations(path)[0], f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_parameter_file(path):
    expects, secrets = expectations(path)
    err = problems_of(load, path)
    text = str(err)
    lines = text.splitlines()
    assert len(lines) == len(err.problems)
    # exactly the expected problems: no cascade of follow-up complaints
    assert len(err.problems) == len(expects), text
    for key, what, fix in expects:
        prefix = f"{path}: {key}: " if key else f"{path}: "
        matching = [ln for ln in lines if ln.startswith(prefix) and what in ln
                    and "; " in ln[ln.index(what):] and fix in ln[ln.index(what) + len(what):]]
        if not key:
            matching = [ln for ln in matching if not re.match(re.escape(str(path)) + r": [\w.\[\]]+: ", ln)]
        assert matching, f"expected {prefix}…{what}…; {fix}\n got:\n{text}"
    every_value = text + repr(err.problems)
    for secret in secrets:
        assert secret not in every_value


def test_problem_rendering_format():
    err = problems_of(from_values, values(endpoint={"port": 80, "allow_alter": "yes"}))
    assert str(err).splitlines() == [
        "<notebook parameters>: endpoint.port: 80 is outside 1024–32767; write an integer from 1024 to 32767",
        "<notebook parameters>: endpoint.allow_alter: expected a boolean, got the string 'yes'; "
        "write true or false without quotes in the parameter file",
    ]
    assert err.problems[0] == params.Problem("endpoint.port", "80 is outside 1024–32767",
                                             "write an integer from 1024 to 32767")


def test_all_problems_of_a_file_are_collected(tmp_path):
    path = write(tmp_path, """\
environment: test
instances:
  - {name: yes, server: 'a.example.com,1433', role: partner}
  - {name: B, server: 'b.example.com,1433', role: partner}
endpoint: {port: 05022, allow_alter: off}
connection: {authentication: windows, encrypt: no}
""")
    err = problems_of(load, path)
    assert [p.path for p in err.problems] == [
        "instances[0].name", "endpoint.port", "endpoint.allow_alter", "connection.encrypt"]
    assert all(p.line for p in err.problems)


# ---------------------------------------------------------------------------------------------
# from_values: traps by type
# ---------------------------------------------------------------------------------------------

def test_from_values_bool_where_a_string_belongs():
    v = values()
    v["instances"][0]["name"] = True
    err = problems_of(from_values, v)
    assert str(err) == ("<notebook parameters>: instances[0].name: expected a string, got True — YAML reads "
                        "yes/no/on/off as booleans; quote it in the parameter file")


@pytest.mark.parametrize("override, path, fragment", [
    ({"connection": {"authentication": "windows", "encrypt": True}}, "connection.encrypt", "got True — YAML reads"),
    ({"connection": {"authentication": "windows", "tds_version": 7.4}}, "connection.tds_version",
     "got 7.4 — YAML reads unquoted numbers"),
    ({"environment": 83}, "environment", "octal 83"),
    ({"endpoint": {"port": "5022"}}, "endpoint.port", "expected an integer, got the string '5022'"),
    ({"endpoint": {"allow_alter": "true"}}, "endpoint.allow_alter", "expected a boolean, got the string 'true'"),
    ({"endpoint": {"allow_alter": 1}}, "endpoint.allow_alter", "expected a boolean, got 1"),
    ({"endpoint": {"port": True}}, "endpoint.port", "got the boolean True"),
    ({"endpoint": {"port": 5022.0}}, "endpoint.port", "expected an integer 1024–32767, got 5022.0"),
    ({"instances": "SQL01"}, "instances", "expected a list of instances"),
    ({"endpoint": ["port", 5022]}, "endpoint", "expected a mapping, got a list"),
    ({"topology": "mirror"}, "topology", "did you mean mirroring?"),
    ({"certificate": {"transfer": "file", "file_share": None}}, "certificate.file_share", "required with transfer"),
])
def test_from_values_problems(override, path, fragment):
    err = problems_of(from_values, values(**override))
    assert any(p.path == path and fragment in f"{p.message}; {p.hint}" for p in err.problems), str(err)


def test_from_values_none_means_not_given():
    """A notebook's parameters cell defaults every parameter to None; papermill overrides the given ones."""
    v = values()
    v.update({k: None for k in NOTEBOOK_PARAMETERS if k not in v})
    assert from_values(v) == from_values(values())
    err = problems_of(from_values, {k: None for k in NOTEBOOK_PARAMETERS})
    assert [p.path for p in err.problems] == ["environment", "instances"]


def test_from_values_rejects_run_parameters_and_non_mappings():
    err = problems_of(from_values, values(target="SQL01"))
    assert "papermill -p target" in str(err)
    assert problems_of(from_values, ["environment"]).problems[0].path == ""


def test_secret_values_are_never_echoed():
    secret = "Zq9-very-secret-value"
    v = values(connection={"authentication": "sql", "user": "u", "password": secret, "sql_pwd": secret,
                           "token": {"nested_password": secret}},
               secrets={"master_key_password": secret, "api_secret": [secret]},
               certificate={"private_key_backup": {"directory": "/x", "password": secret}})
    v["instances"][0]["connection"] = {"password": secret}
    v["extra_token"] = secret
    err = problems_of(from_values, v)
    assert secret not in str(err) and secret not in repr(err.problems) and secret not in repr(err.args)
    secretish = [p for p in err.problems if "looks like a secret value" in p.message]
    assert {p.path for p in secretish} >= {"connection.password", "connection.sql_pwd",
                                           "connection.token.nested_password", "secrets.master_key_password",
                                           "secrets.api_secret[0]", "certificate.private_key_backup.password",
                                           "instances[0].connection.password", "extra_token"}
    assert all(p.hint == "put it in an environment variable and write env:NAME" for p in secretish)


def test_secret_in_a_yaml_syntax_error_is_not_echoed(tmp_path):
    path = write(tmp_path, "environment: t\nconnection:\n  password: Sec:ret: Value99\n")
    err = problems_of(load, path)
    assert "Value99" not in str(err) and "line 3" in str(err)


def test_numeric_secret_in_yaml_is_not_echoed(tmp_path):
    path = write(tmp_path, "environment: t\nconnection:\n  password: 0123456789\n  pwd: 987654321\n")
    err = problems_of(load, path)
    # 0123456789 is no octal number, so YAML keeps it a string; 987654321 is an int: neither is echoed
    assert "123456789" not in str(err) and "987654321" not in str(err)
    assert {p.path for p in err.problems if p.message == "looks like a secret value"} == {
        "connection.password", "connection.pwd"}


# ---------------------------------------------------------------------------------------------
# YAML reading
# ---------------------------------------------------------------------------------------------

def test_anchors_and_merge_keys(tmp_path):
    path = write(tmp_path, """\
environment: test
x-connection: &conn {authentication: windows}
instances:
  - &a {name: SQL01, server: 'sql01.example.com,1433', role: partner}
  - <<: *a
    name: SQL02
    server: 'sql02.example.com,1433'
connection: *conn
""")
    err = problems_of(load, path)
    assert [p.path for p in err.problems] == ["x-connection"]        # only the unknown key
    path = write(tmp_path, """\
environment: test
instances:
  - &a {name: SQL01, server: 'sql01.example.com,1433', role: partner}
  - <<: *a
    name: SQL02
    server: 'sql02.example.com,1433'
connection: {authentication: windows}
""")
    env = load(path)
    assert [(i.name, i.role) for i in env.instances] == [("SQL01", "partner"), ("SQL02", "partner")]


def test_dates_stay_strings_like_papermill(tmp_path):
    path = write(tmp_path, "environment: 2026-11-27\n" + yaml.safe_dump({"instances": values()["instances"],
                                                                         "connection": values()["connection"]}))
    assert load(path).environment == "2026-11-27"


def test_explicit_str_tag_is_a_string(tmp_path):
    path = write(tmp_path, "environment: !!str yes\n" + yaml.safe_dump({"instances": values()["instances"],
                                                                         "connection": values()["connection"]}))
    assert load(path).environment == "yes"


@pytest.mark.parametrize("text, fragment", [
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("a: &x [*x]\n", "refers to itself"),
    ("environment: !!int abc\n", "cannot read this value"),
    ("environment: !python/object:os.system x\n", "cannot read this value"),
    ("[" * 5000, "nested too deeply"),
    ("\x00", "not valid YAML"),
    ("a: 1\n" * 3, "duplicate key"),
])
def test_unreadable_files(tmp_path, text, fragment):
    err = problems_of(load, write(tmp_path, text))
    assert fragment in str(err)


def test_missing_and_undecodable_files(tmp_path):
    err = problems_of(load, tmp_path / "nope.yaml")
    assert str(err) == f"{tmp_path / 'nope.yaml'}: no such parameter file; check the path; parameter files live in parameters/"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("environment: caf\xe9\n".encode("latin-1"))
    assert "UTF-8" in str(problems_of(load, bad))
    assert "cannot be read" in str(problems_of(load, tmp_path))


def test_billion_laughs_is_cheap(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("instances: *a11")
    err = problems_of(load, write(tmp_path, "\n".join(lines) + "\n"))
    assert "a0" in str(err)


# ---------------------------------------------------------------------------------------------
# Property tests: bad input gives ParameterError, never a traceback
# ---------------------------------------------------------------------------------------------

KEYS = st.sampled_from(sorted({k.split(".")[-1].replace("[]", "") for k in SCHEMA_KEYS}
                              | set(NOTEBOOK_PARAMETERS) | {"private_key_backup", "target", "sa_password"}))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["partner", "witness", "replica", "mirroring", "availability_group", "yes", "no", "on",
                     "sql", "windows", "FreeTDS", "env:X", "env:", "file:", "keyring:a/b", "prompt:", "{instance}",
                     "{peer}", "{", "}", "a,1433", "h\\I", "127.0.0.1,1433", "TCP://h:5022", "all", "aes rc4",
                     "disabled", "file", "binary", "0123", "7.4", "", " ", "\t", "\u2029"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.one_of(KEYS, st.text(max_size=8), st.integers(), st.booleans()),
                                            inner, max_size=6)),
    max_leaves=30,
)
TOP = st.dictionaries(st.one_of(st.sampled_from(NOTEBOOK_PARAMETERS), KEYS, st.text(max_size=8)), VALUES,
                      max_size=9)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])


def check_outcome(fn, *args):
    try:
        env = fn(*args)
    except ParameterError as exc:
        assert exc.problems and str(exc)
        for line in str(exc).splitlines():
            assert line.startswith(exc.source + ": ")
        return None
    assert isinstance(env, params.Environment)
    env.digest()
    return env


@FUZZ
@given(TOP)
def test_fuzz_from_values(data):
    check_outcome(from_values, data)


@FUZZ
@given(st.one_of(TOP, VALUES))
def test_fuzz_load_yaml_dumps(tmp_path, data):
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    check_outcome(load, write(tmp_path, text, "fuzz.yaml"))


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_load_text(tmp_path, text):
    check_outcome(load, write(tmp_path, text, "fuzz.yaml"))


@FUZZ
@given(st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(["del", "ins", "dup"]),
                          st.sampled_from(list(" :-'\"\n\t{}[],#&*!|>%@`0yYnN\\"))), min_size=1, max_size=4))
def test_fuzz_mutated_lab_file(tmp_path, edits):
    text = LAB.read_text()
    for pos, op, ch in edits:
        pos %= len(text) + 1
        if op == "del":
            text = text[:pos] + text[pos + 1:]
        elif op == "ins":
            text = text[:pos] + ch + text[pos:]
        else:
            text = text[:pos] + text[pos:pos + 20] + text[pos:]
    check_outcome(load, write(tmp_path, text, "lab.yaml"))


CANARY = "Canary-Value-Not-Echoed-7"


@FUZZ
@given(st.one_of(st.text(min_size=1, max_size=40), st.integers(), st.floats(allow_nan=False), st.booleans())
       .filter(lambda s: not (isinstance(s, str) and (re.match(r"(?i)(env|file|keyring|prompt):", s)
                                                      or params._has_control(s) or not s.strip()))))
def test_fuzz_error_text_does_not_depend_on_secret_values(tmp_path, secret):
    """Whatever is written where a secret reference belongs, the error text is the same: nothing is echoed."""
    def text_for(value, loader):
        v = values(connection={"authentication": "sql", "user": "u", "password": value, "api_token": value},
                   secrets={"master_key_password": value})
        if loader is load:
            return str(problems_of(load, write(tmp_path, yaml.safe_dump(v, width=10**6), "s.yaml")))
        return str(problems_of(from_values, v))

    for loader in (from_values, load):
        assert text_for(secret, loader) == text_for(CANARY, loader)
    assert CANARY not in text_for(CANARY, load) and CANARY not in text_for(CANARY, from_values)
