"""Parameter files: load, validate, and give the runbooks typed values.

The keys are declared once, in mirrorkit.config.model (docs/parameters.md and parameters/schema.json
are generated from there). Three entry points:

* ``load(path)`` reads a parameter file; ``load_bytes(data, source)`` validates bytes already read
  (say, hashed first). Both compose the YAML to nodes with the same YAML 1.1 resolver papermill
  uses, so they see how every scalar was written and can refuse the YAML traps (``yes`` read as a
  boolean, ``0123`` read as octal 83, ...) with the fix.
* ``from_values(values)`` validates the values a notebook received from papermill (the
  top-level keys, already parsed); traps are recognised by type.

All apply the same rules and raise ``ParameterError`` with every problem found,
one per line: ``<file>: <key path>: <what is wrong>; <what to write instead>``.
Secret values are never echoed: secrets are written as references (``env:NAME``,
``file:PATH``, ``keyring:SERVICE/NAME``, ``prompt:``) and stay ``SecretRef`` objects here;
resolving them is the caller's business (mirrorkit.access.credentials).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from . import rules
from .checks import BAD, Checker, kind_of
from .model import (NOTEBOOK_PARAMETERS, NOTEBOOK_SOURCE, RUN_PARAMETERS, SCHEMA_KEYS, CertificateSettings,
                    ConnectionSettings, EndpointSettings, Environment, Instance, LoginSettings, PrivateKeyBackup,
                    SecretSettings, VerifySettings, home_sections, keys_of)
from .nodes import SCALAR, SEQ, Node, PapermillLoader, YamlConverter, from_python, join
from .problems import ParameterError, Problem
from .references import SECRET_KINDS, SecretRef, has_control, parse_secret_ref

__all__ = [
    "NOTEBOOK_PARAMETERS", "RUN_PARAMETERS", "SCHEMA_KEYS", "ParameterError", "Problem", "SecretRef",
    "Environment", "Instance", "EndpointSettings", "CertificateSettings", "PrivateKeyBackup",
    "LoginSettings", "ConnectionSettings", "SecretSettings", "VerifySettings",
    "load", "load_bytes", "from_values", "parse_secret_ref", "SECRET_KINDS",
]

# private names tests/kit/test_params.py reaches for
_PapermillLoader = PapermillLoader
_has_control = has_control

_HOME = home_sections()
_Rule = Callable[[Any, dict[str, Any], dict[str, Node]], Any]


# ---------------------------------------------------------------------------------------------
# Reading the declared sections
# ---------------------------------------------------------------------------------------------


def _section(ck: Checker, node: Node | None, path: str, cls: type, *, what: str = "a mapping",
             parent: Node | None = None, present_only: bool = False,
             after: Mapping[str, _Rule] | None = None) -> tuple[dict[str, Any], dict[str, Node]] | None:
    """The declared value keys of a section, checked → (values, nodes); None if it is not a mapping.

    Keys are checked in declaration order with their defaults (with ``present_only``: the keys
    written, in file order). ``after[key](value, values, nodes)`` runs right after that key's
    check and may replace its value, so that the problems of one line keep their order.
    Sections, lists and overrides inside are left to the caller.
    """
    declared = keys_of(cls)
    nodes = ck.mapping(node, path, declared, what=what, elsewhere=_HOME)
    if nodes is None:
        return None
    values: dict[str, Any] = {}
    for name in (nodes if present_only else declared):
        key = declared[name]
        if key.kind in ("section", "items", "overrides"):
            continue
        value = ck.declared(key, nodes.get(name), join(path, name), parent=parent)
        if after and name in after:
            value = after[name](value, values, nodes)
        values[name] = value
    return values, nodes


def _settings(ck: Checker, node: Node | None, path: str, cls: type, **kw: Any) -> tuple[dict[str, Any], dict[str, Node]]:
    """A section with defaults; a section that is no mapping is reported and read as empty."""
    return _section(ck, node, path, cls, **kw) or _section(ck, None, path, cls, **kw)  # type: ignore[return-value]


def _connection_fields(ck: Checker, node: Node | None, path: str) -> dict[str, Any] | None:
    """The connection keys given at ``path`` (validated); absent keys are left out."""
    read = _section(ck, node, path, ConnectionSettings, present_only=True)
    return None if read is None else read[0]


def _validate(root: Node, ck: Checker) -> Environment | None:
    read = _section(ck, root, "", Environment, what="a mapping of parameters")
    if read is None:
        return None
    top_values, top = read
    env_name, topology = top_values["environment"], top_values["topology"]

    ep, ep_nodes = _settings(ck, top.get("endpoint"), "endpoint", EndpointSettings, after={
        "listener_ip": lambda v, vals, nodes: rules.listener_ip(ck, v, nodes.get("listener_ip")),
        "algorithm": lambda v, vals, nodes: rules.algorithm(ck, v, nodes.get("algorithm"), vals["encryption"]),
    })
    cert, ct = _settings(ck, top.get("certificate"), "certificate", CertificateSettings, after={
        "file_share": lambda v, vals, nodes: rules.file_share(ck, v, vals["transfer"], nodes.get("transfer")),
    })
    pkb = _section(ck, ct.get("private_key_backup"), "certificate.private_key_backup", PrivateKeyBackup)
    cert["private_key_backup"] = BAD if pkb is None else rules.private_key_backup(ck, *pkb)
    logins, lg = _settings(ck, top.get("logins"), "logins", LoginSettings)
    secrets, _ = _settings(ck, top.get("secrets"), "secrets", SecretSettings)
    verify, _ = _settings(ck, top.get("verify"), "verify", VerifySettings)
    base_conn = _connection_fields(ck, top.get("connection"), "connection")

    # instances -------------------------------------------------------------------------------------
    inst_node = top.get("instances")
    raw_instances: list[dict[str, Any]] = []
    instances_ok = True
    if inst_node is None or (inst_node.kind == SCALAR and inst_node.value is None):
        ck.add("instances", "is missing" if inst_node is None else "is empty",
               "list the instances: instances: [{name: SQL01, server: 'sql01.example.com,1433', role: partner}, ...]",
               inst_node)
        instances_ok = False
    elif inst_node.kind != SEQ:
        ck.add("instances", f"expected a list of instances, got {ck.describe(inst_node, 'instances')}",
               "write each instance as a list item: '- name: SQL01' with server: and role: under it", inst_node)
        instances_ok = False
    elif not inst_node.value:
        ck.add("instances", "is empty", "list the instances, each with name:, server: and role:", inst_node)
        instances_ok = False
    else:
        what = keys_of(Environment)["instances"].what
        for i, item in enumerate(inst_node.value):
            rec = _instance(ck, item, i, what)
            if rec is None:
                instances_ok = False
                continue
            raw_instances.append(rec)

    # -- rules across keys ---------------------------------------------------------------------------
    built: list[Instance] = []
    for rec in raw_instances:
        p = f"instances[{rec['index']}]"
        parsed = rec["parsed"]
        if parsed is BAD:
            instances_ok = False
            host = inst_part = port = None
        else:
            host, inst_part, port = parsed
        addr = rec["endpoint_address"]
        if addr is None and host is not None:
            if host.lower() in rules.LOCAL_HOSTS:
                ck.add(f"{p}.endpoint_address", f"is missing, and the server's host {host} is a local alias "
                       "that peers cannot use", "add endpoint_address: <the host name peers connect to>",
                       rec["nodes"].get("server"))
                addr = BAD
            else:
                addr = host[1:-1] if host.startswith("[") else host
        eport = rec["endpoint_port"] if rec["endpoint_port"] is not None else ep["port"]
        conn = None
        if base_conn is not None and rec["connection"] is not None:
            merged = {**base_conn, **rec["connection"]}
            if BAD not in merged.values():
                conn = ConnectionSettings(**merged)
        values = (rec["name"], rec["server"], rec["role"], addr, eport, conn)
        if any(v is BAD or v is None for v in values):
            instances_ok = False
            continue
        built.append(Instance(name=rec["name"], server=rec["server"], host=host, port=port, role=rec["role"],
                              endpoint_address=addr, endpoint_port=eport, connection=conn,
                              instance_name=inst_part))

    roles = [r["role"] for r in raw_instances]
    if raw_instances and all(isinstance(r, str) for r in roles):
        topology = rules.check_topology(ck, raw_instances, topology, top.get("topology"))
    elif topology is None and instances_ok is False:
        topology = BAD

    rules.check_unique(ck, raw_instances, ep["port"])
    ep["listener_ip"] = rules.check_listener_ip(ck, ep["listener_ip"], raw_instances, ep_nodes.get("listener_ip"))
    # connection requirements, per instance (after merging overrides)
    rules.check_auth(ck, raw_instances, base_conn)
    # names from templates
    names = [r["name"] for r in raw_instances if isinstance(r["name"], str)]
    if names and len(names) == len(raw_instances) and len({n.lower() for n in names}) == len(names):
        rules.check_names(ck, names, cert["name"], cert["subject"], logins["login"], logins["user"], ct, lg)

    if ck.problems:
        return None
    return Environment(
        environment=env_name, topology=topology, instances=tuple(built),
        endpoint=EndpointSettings(**ep),
        certificate=CertificateSettings(**cert),
        logins=LoginSettings(**logins),
        connection=ConnectionSettings(**base_conn),  # type: ignore[arg-type]
        secrets=SecretSettings(**secrets),
        verify=VerifySettings(**verify),
        source=ck.source,
    )


def _instance(ck: Checker, item: Node, i: int, what: str) -> dict[str, Any] | None:
    """One item of instances: its checked values, the parsed server and its nodes; None if unusable."""
    p = f"instances[{i}]"
    parsed: list[Any] = [BAD]

    def server(value: Any, values: dict[str, Any], nodes: dict[str, Node]) -> Any:
        if isinstance(value, str):
            parsed[0] = rules.parse_server(ck, nodes["server"], f"{p}.server", value)
        return value

    def endpoint_address(value: Any, values: dict[str, Any], nodes: dict[str, Node]) -> Any:
        if isinstance(value, str):
            return rules.check_endpoint_address(ck, nodes.get("endpoint_address"), f"{p}.endpoint_address", value)
        return value

    read = _section(ck, item, p, Instance, what=what, parent=item,
                    after={"server": server, "endpoint_address": endpoint_address})
    if read is None:
        return None
    values, nodes = read
    return {"index": i, "nodes": nodes, **values, "parsed": parsed[0],
            "connection": _connection_fields(ck, nodes.get("connection"), f"{p}.connection")}


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def _finish(ck: Checker, root: Node | None) -> Environment:
    env = _validate(root, ck) if root is not None and not ck.problems else None
    if env is None:
        problems = _ordered(ck.problems) or [Problem("", "is not valid", "")]
        raise ParameterError(ck.source, problems)
    return env


def _ordered(problems: list[Problem]) -> list[Problem]:
    """File order (by line) first, then the problems that concern the file as a whole."""
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


def _yaml_hint(problem: str) -> str:
    if "mapping values are not allowed" in problem:
        return ("quote a value that contains ': ' or ends with ':' (e.g. password: 'prompt:'), "
                "and check the indentation")
    if "unknown escape character" in problem or "expected escape sequence" in problem:
        return ("inside double quotes a backslash starts an escape; write Windows paths and "
                "HOST\\INSTANCE in single quotes: 'SQL01\\PROD'")
    if "'\\t'" in problem or "tab" in problem:
        return "indent with spaces, not tabs"
    if "alias" in problem or "anchor" in problem:
        return "define an anchor (&name) before its alias (*name), once"
    if "single document" in problem:
        return "keep one YAML document per parameter file (remove the extra ---)"
    return "check the indentation and the quoting on that line"


MAX_FILE_BYTES = 1024 * 1024      # a real parameter file is a few kilobytes


def load(path: str | Path) -> Environment:
    """Read, check and return the parameter file at ``path``; ParameterError lists every problem."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ParameterError(source, [Problem("", "no such parameter file",
                                              "check the path; parameter files live in parameters/")]) from None
    except OSError as exc:
        raise ParameterError(source, [Problem("", f"cannot be read ({exc.strerror or type(exc).__name__})",
                                              "check the path and its permissions")]) from None
    return load_bytes(data, source)


def load_bytes(data: bytes, source: str) -> Environment:
    """Check and return the parameter file whose content is ``data`` (``source`` names it in messages).

    What ``load`` does once it has read the file: a caller that has read (and hashed) the bytes
    validates exactly those bytes.
    """
    source = str(source)
    ck = Checker(source)
    if len(data) > MAX_FILE_BYTES:       # before YAML reads it: a huge file costs seconds per megabyte
        raise ParameterError(source, [Problem("", f"is {len(data) / 1e6:.1f} MB, more than a parameter file can "
                                              f"be ({MAX_FILE_BYTES // 1024 // 1024} MiB)",
                                              "write only the documented keys (see parameters/example-prod.yaml)")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParameterError(source, [Problem("", f"is not UTF-8 text (byte {exc.start})",
                                              "save the file as UTF-8")]) from None
    try:
        loader = PapermillLoader(text)
    except yaml.YAMLError as exc:           # the reader refuses control characters up front
        reason = getattr(exc, "reason", None) or "unreadable YAML"
        raise ParameterError(source, [Problem("", f"is not valid YAML: {reason}",
                                              "remove control characters and save the file as UTF-8")]) from None
    root: Node | None = None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = ", ".join(x for x in (exc.context, exc.problem) if x) or "syntax error"
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise ParameterError(source, [Problem("", f"is not valid YAML: {what}{where}",
                                                  _yaml_hint(what))]) from None
        except yaml.YAMLError as exc:
            reason = getattr(exc, "reason", None) or "unreadable YAML"
            raise ParameterError(source, [Problem("", f"is not valid YAML: {reason}",
                                                  "remove control characters and save the file as UTF-8")]) from None
        except RecursionError:
            raise ParameterError(source, [Problem("", "is nested too deeply to be a parameter file",
                                                  "write the documented keys only")]) from None
        if node is None:
            raise ParameterError(source, [Problem("", "is empty",
                                                  "write at least environment: and instances: "
                                                  "(see parameters/example-prod.yaml)")])
        try:
            root = YamlConverter(loader, ck.problems).convert(node, "")
        except RecursionError:
            raise ParameterError(source, [Problem("", "is nested too deeply to be a parameter file",
                                                  "write the documented keys only")]) from None
    finally:
        loader.dispose()
    if ck.problems:             # tags, merges, recursion: report with the rest of the checks
        structural = list(ck.problems)
        ck.problems.clear()
        try:
            _validate(root, ck)
        except RecursionError:
            pass
        ck.problems[:0] = structural
        raise ParameterError(source, _ordered(ck.problems))
    return _finish(ck, root)


def from_values(values: Mapping[str, Any], source: str = NOTEBOOK_SOURCE) -> Environment:
    """Validate the parameters a notebook received (top-level keys, already parsed by papermill).

    A top-level value of None counts as absent (the parameters cell's default).
    """
    ck = Checker(source)
    if not isinstance(values, Mapping):
        raise ParameterError(source, [Problem("", f"expected a mapping of parameters, got {kind_of(values)}",
                                              "pass {name: value} for the keys in NOTEBOOK_PARAMETERS")])
    cleaned = {k: v for k, v in values.items() if not (v is None and k in NOTEBOOK_PARAMETERS)}
    try:
        root = from_python(cleaned)
    except RecursionError:
        raise ParameterError(source, [Problem("", "is nested too deeply", "pass the documented keys only")]) from None
    return _finish(ck, root)
