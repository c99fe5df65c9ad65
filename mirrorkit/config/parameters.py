"""Parameter files: load, validate, and give the runbooks typed values.

The schema is docs/parameters.md. Two entry points:

* ``load(path)`` reads a parameter file itself, composing the YAML to nodes with the same
  YAML 1.1 resolver papermill uses, so it sees how every scalar was written and can refuse
  the YAML traps (``yes`` read as a boolean, ``0123`` read as octal 83, ...) with the fix.
* ``from_values(values)`` validates the values a notebook received from papermill (the
  top-level keys, already parsed); traps are recognised by type.

Both apply the same semantic rules and raise ``ParameterError`` with every problem found,
one per line: ``<file>: <key path>: <what is wrong>; <what to write instead>``.
Secret values are never echoed: secrets are written as references (``env:NAME``,
``file:PATH``, ``keyring:SERVICE/NAME``, ``prompt:``) and stay ``SecretRef`` objects here;
resolving them is the caller's business.
"""
from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import re
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

__all__ = [
    "NOTEBOOK_PARAMETERS", "RUN_PARAMETERS", "SCHEMA_KEYS", "ParameterError", "Problem", "SecretRef",
    "Environment", "Instance", "EndpointSettings", "CertificateSettings", "PrivateKeyBackup",
    "LoginSettings", "ConnectionSettings", "SecretSettings", "VerifySettings",
    "load", "from_values", "parse_secret_ref",
]

#: Top-level keys of a parameter file; each is a notebook parameter.
NOTEBOOK_PARAMETERS: tuple[str, ...] = (
    "environment", "topology", "instances", "endpoint", "certificate", "logins",
    "connection", "secrets", "verify",
)
#: Parameters given per run (papermill -p), never in a parameter file.
RUN_PARAMETERS: tuple[str, ...] = ("target", "mode", "change_id", "certificate_dir", "interactive")

NOTEBOOK_SOURCE = "<notebook parameters>"

# ---------------------------------------------------------------------------------------------
# Problems and the error
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a parameter file: where, what, and what to write instead."""
    path: str
    message: str
    hint: str = ""
    line: int | None = None

    def render(self, source: str) -> str:
        path, message, hint = (_one_line(t) for t in (self.path, self.message, self.hint))
        where = f"{_one_line(source)}: {path}: " if path else f"{_one_line(source)}: "
        what = message if self.line is None else f"{message} (line {self.line})"
        return f"{where}{what}; {hint}" if hint else f"{where}{what}"


def _one_line(text: str) -> str:
    """Escape control characters and line separators so that a problem renders on one line."""
    if not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


class ParameterError(Exception):
    """The parameter file (or the notebook's parameter values) is not valid.

    ``problems`` lists every problem found; ``str()`` renders one per line.
    """

    def __init__(self, source: str, problems: Iterable[Problem]):
        self.source = str(source)
        self.problems: list[Problem] = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(p.render(self.source) for p in self.problems)

    def __str__(self) -> str:
        return self.render()


# ---------------------------------------------------------------------------------------------
# Secret references
# ---------------------------------------------------------------------------------------------

SECRET_KINDS = ("env", "file", "keyring", "prompt")
_SECRETISH = re.compile(r"password|secret|token|pwd", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SECRET_FIX = "put it in an environment variable and write env:NAME"


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


class _NotAReference(ValueError):
    pass


def parse_secret_ref(text: str) -> SecretRef:
    """Parse ``env:VAR``, ``file:PATH``, ``keyring:SERVICE/NAME`` or ``prompt:``.

    Raises ValueError with a message that never contains the text itself.
    """
    if not isinstance(text, str):
        raise _NotAReference("not a string")
    kind, sep, target = text.partition(":")
    if not sep or kind.strip().lower() not in SECRET_KINDS:
        raise _NotAReference("not a secret reference")
    if kind not in SECRET_KINDS:
        raise ValueError(f"reference kind {kind.strip().lower()}: is written in lower case")
    if kind == "env":
        if not _ENV_NAME.match(target):
            raise ValueError("env: needs an environment variable name (letters, digits, _), "
                             "e.g. env:MIRRORKIT_SQL_PASSWORD")
    elif kind == "file":
        if not target.strip() or target != target.strip() or _has_control(target):
            raise ValueError("file: needs a path with no surrounding spaces, "
                             "e.g. file:/etc/mirrorkit/sa.password")
    elif kind == "keyring":
        service, slash, name = target.rpartition("/")
        if not slash or not service.strip() or not name.strip() or _has_control(target):
            raise ValueError("keyring: needs SERVICE/NAME, e.g. keyring:mirrorkit/prod-master-key")
    elif kind == "prompt":
        if _has_control(target):
            raise ValueError("prompt: takes an optional one-line label")
    return SecretRef(kind, target, text)


# ---------------------------------------------------------------------------------------------
# The validated values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSettings:
    """How the kit connects to an instance (TDS through ODBC)."""
    driver: str = "ODBC Driver 18 for SQL Server"
    authentication: str = "sql"                 # sql | windows
    user: str | None = None
    password: SecretRef | None = None
    encrypt: str = "yes"                        # yes | no | strict | optional
    trust_server_certificate: bool = False
    host_name_in_certificate: str | None = None
    login_timeout: int = 15
    tds_version: str = "7.4"

    @property
    def is_freetds(self) -> bool:
        return "freetds" in self.driver.lower()


@dataclass(frozen=True)
class EndpointSettings:
    name: str = "Mirroring"
    port: int = 5022
    listener_ip: str = "all"                    # "all" or an IPv4 address
    encryption: str = "required"                # required | supported | disabled
    algorithm: str | None = "aes"               # aes | rc4 | "aes rc4" | "rc4 aes"; None with disabled
    partner_role: str = "all"                   # partner | all
    allow_alter: bool = False


@dataclass(frozen=True)
class PrivateKeyBackup:
    directory: str
    password: SecretRef


@dataclass(frozen=True)
class CertificateSettings:
    name: str = "{instance}_dbm_cert"
    subject: str = "{instance} DATABASE_MIRRORING endpoint"
    lifetime_days: int = 1095
    backdate_hours: int = 24
    transfer: str = "binary"                    # binary | file
    file_share: str | None = None
    private_key_backup: PrivateKeyBackup | None = None


@dataclass(frozen=True)
class LoginSettings:
    login: str = "{peer}_dbm_login"
    user: str = "{peer}_dbm_user"


@dataclass(frozen=True)
class SecretSettings:
    master_key_password: SecretRef | None = None


@dataclass(frozen=True)
class VerifySettings:
    expiry_warning_days: int = 30
    errorlog_hours: int = 24


@dataclass(frozen=True)
class Instance:
    name: str
    server: str                                 # as written: HOST,PORT or HOST\INSTANCE[,PORT]
    host: str
    port: int | None                            # None for HOST\INSTANCE (SQL Browser resolves it)
    role: str                                   # partner | witness | replica
    endpoint_address: str
    endpoint_port: int
    connection: ConnectionSettings              # merged: defaults < connection < instances[].connection
    instance_name: str | None = None            # the INSTANCE of HOST\INSTANCE


@dataclass(frozen=True)
class Environment:
    environment: str
    topology: str                               # mirroring | availability_group
    instances: tuple[Instance, ...]
    endpoint: EndpointSettings
    certificate: CertificateSettings
    logins: LoginSettings
    connection: ConnectionSettings              # the file's connection section with defaults
    secrets: SecretSettings
    verify: VerifySettings
    source: str = field(default=NOTEBOOK_SOURCE, compare=False)

    # -- instances -------------------------------------------------------------------------
    def instance(self, name: str | Instance) -> Instance:
        """The instance called ``name`` (case-insensitive)."""
        if isinstance(name, Instance):
            name = name.name
        if isinstance(name, str):
            for inst in self.instances:
                if inst.name.lower() == name.lower():
                    return inst
        known = ", ".join(i.name for i in self.instances)
        raise ParameterError(self.source, [Problem(
            "target", f"no instance named {name!r}", f"use one of the instances in the file: {known}")])

    @property
    def partners(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.role == "partner")

    @property
    def witness(self) -> Instance | None:
        return next((i for i in self.instances if i.role == "witness"), None)

    @property
    def replicas(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.role == "replica")

    def peers_of(self, name: str | Instance) -> tuple[Instance, ...]:
        """The instances that must connect TO this one (and that it connects to).

        Mirroring: each partner with the other partner and the witness; the witness with both
        partners. Availability group: every other replica (full mesh).
        """
        me = self.instance(name)
        if self.topology == "availability_group":
            return tuple(i for i in self.instances if i is not me)
        if me.role == "witness":
            return self.partners
        return tuple(i for i in self.instances if i is not me)

    # -- endpoint --------------------------------------------------------------------------
    def endpoint_url(self, name: str | Instance) -> str:
        inst = self.instance(name)
        host = inst.endpoint_address
        if ":" in host:                          # IPv6 literal
            host = f"[{host}]"
        return f"TCP://{host}:{inst.endpoint_port}"

    def endpoint_role(self, name: str | Instance) -> str:
        """ROLE of the instance's DATABASE_MIRRORING endpoint: PARTNER, WITNESS or ALL."""
        inst = self.instance(name)
        if inst.role == "witness":
            return "WITNESS"
        if inst.role == "replica":
            return "ALL"
        return self.endpoint.partner_role.upper()

    # -- names -----------------------------------------------------------------------------
    def certificate_name(self, name: str | Instance) -> str:
        return _expand(self.certificate.name, "instance", self.instance(name).name)

    def certificate_subject(self, name: str | Instance) -> str:
        return _expand(self.certificate.subject, "instance", self.instance(name).name)

    def login_name(self, peer: str | Instance) -> str:
        return _expand(self.logins.login, "peer", _principal_part(self.instance(peer).name))

    def user_name(self, peer: str | Instance) -> str:
        return _expand(self.logins.user, "peer", _principal_part(self.instance(peer).name))

    # -- records ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The validated values as plain data (secret references as written), without source."""
        return _plain({k: getattr(self, k) for k in self.__dataclass_fields__ if k != "source"})

    def digest(self) -> str:
        """sha256 of a canonical JSON of the validated values (defaults applied)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, SecretRef):
        return value.raw
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _principal_part(name: str) -> str:
    # SQL Server login names cannot contain a backslash; a named instance's HOST\INSTANCE
    # becomes HOST_INSTANCE in login and user names.
    return name.replace("\\", "_")


def _expand(template: str, placeholder: str, value: str) -> str:
    out = []
    for literal, fname, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if fname is not None:
            out.append(value)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# A uniform view of the input: YAML nodes (load) or Python values (from_values)
# ---------------------------------------------------------------------------------------------

_MAP, _SEQ, _SCALAR = "map", "seq", "scalar"


@dataclass(eq=False)
class _N:
    kind: str
    value: Any                  # scalar: the value papermill would pass; map: [(key _N, value _N)]; seq: [_N]
    raw: str | None = None      # YAML scalar: the text as written (None for Python values)
    style: str | None = None    # YAML scalar style: None = plain, "'", '"', "|", ">"
    line: int | None = None


class _Unreadable:
    """A value that could not be read (reported already)."""

    def __repr__(self) -> str:
        return "<unreadable>"


_UNREADABLE = _Unreadable()
_MAX_DEPTH = 40
_MAX_NODES = 200_000


class _PapermillLoader(yaml.SafeLoader):
    """papermill's loader: SafeLoader (YAML 1.1) without the timestamp resolver."""
    yaml_implicit_resolvers = {
        k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_STD = "tag:yaml.org,2002:"


class _YamlConverter:
    def __init__(self, loader: _PapermillLoader, problems: list[Problem]):
        self.loader = loader
        self.problems = problems
        self.memo: dict[int, _N] = {}
        self.active: set[int] = set()
        self.count = 0

    def convert(self, node: yaml.Node, path: str, depth: int = 0) -> _N:
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        line = node.start_mark.line + 1
        if key in self.active:
            self.problems.append(Problem(path, "refers to itself through an alias",
                                        "remove the recursive *alias", line))
            return _N(_SCALAR, _UNREADABLE, line=line)
        self.count += 1
        if depth > _MAX_DEPTH or self.count > _MAX_NODES:
            return _N(_SCALAR, _UNREADABLE, line=line)
        self.active.add(key)
        try:
            out = self._convert(node, path, depth, line)
        finally:
            self.active.discard(key)
        self.memo[key] = out
        return out

    def _convert(self, node: yaml.Node, path: str, depth: int, line: int) -> _N:
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.loader.construct_object(node, deep=True)
            except Exception:   # noqa: BLE001 - any failure of an explicit tag (!!int abc, !foo)
                shown = "" if _looks_secretish(path) else f" {node.tag}"
                self.problems.append(Problem(path, f"cannot read this value as the YAML tag{shown}",
                                            "remove the !tag and write a plain value", line))
                value = _UNREADABLE
            return _N(_SCALAR, value, raw=node.value, style=node.style, line=line)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _STD + "seq":
                self.problems.append(Problem(path, f"unsupported YAML tag {node.tag}",
                                            "remove the tag", line))
            return _N(_SEQ, [self.convert(item, f"{path}[{i}]", depth + 1)
                             for i, item in enumerate(node.value)], line=line)
        # mapping
        if node.tag != _STD + "map":
            self.problems.append(Problem(path, f"unsupported YAML tag {node.tag}", "remove the tag", line))
        pairs: list[tuple[_N, _N]] = []
        merged: list[tuple[_N, _N]] = []
        for knode, vnode in node.value:
            if knode.tag == _STD + "merge":
                merged.extend(self._merge(vnode, path, depth))
                continue
            if isinstance(knode, yaml.ScalarNode):
                k = self.convert(knode, path, depth + 1)
            else:
                k = _N(_SCALAR, _UNREADABLE, raw="<complex key>", line=knode.start_mark.line + 1)
            kname = k.value if isinstance(k.value, str) else (k.raw or "?")
            pairs.append((k, self.convert(vnode, _join(path, kname), depth + 1)))
        if merged:
            explicit = {k.value for k, _ in pairs if isinstance(k.value, str)}
            seen: set[str] = set()
            extra = []
            for k, v in merged:     # earlier merge sources win, explicit keys win over all
                if isinstance(k.value, str) and (k.value in explicit or k.value in seen):
                    continue
                if isinstance(k.value, str):
                    seen.add(k.value)
                extra.append((k, v))
            pairs = extra + pairs
        return _N(_MAP, pairs, line=line)

    def _merge(self, vnode: yaml.Node, path: str, depth: int) -> list[tuple[_N, _N]]:
        sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
        out: list[tuple[_N, _N]] = []
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                self.problems.append(Problem(path, "a << merge key needs a mapping (or a list of mappings)",
                                            "write <<: *anchor where &anchor names a mapping",
                                            src.start_mark.line + 1))
                continue
            conv = self.convert(src, path, depth + 1)
            if conv.kind == _MAP:
                out.extend(conv.value)
        return out


def _from_python(value: Any, path: str = "", depth: int = 0, active: set[int] | None = None) -> _N:
    active = set() if active is None else active
    if depth > _MAX_DEPTH:
        return _N(_SCALAR, _UNREADABLE)
    if isinstance(value, Mapping):
        if id(value) in active:
            return _N(_SCALAR, _UNREADABLE)
        active.add(id(value))
        try:
            pairs = []
            for k, v in list(value.items()):
                kname = k if isinstance(k, str) else repr(k)
                pairs.append((_N(_SCALAR, k), _from_python(v, _join(path, kname), depth + 1, active)))
        finally:
            active.discard(id(value))
        return _N(_MAP, pairs)
    if isinstance(value, (list, tuple)):
        if id(value) in active:
            return _N(_SCALAR, _UNREADABLE)
        active.add(id(value))
        try:
            items = [_from_python(v, f"{path}[{i}]", depth + 1, active) for i, v in enumerate(value)]
        finally:
            active.discard(id(value))
        return _N(_SEQ, items)
    return _N(_SCALAR, value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _last_key(path: str) -> str:
    tail = path.rsplit(".", 1)[-1]
    return re.sub(r"\[\d+\]$", "", tail) or tail


def _looks_secretish(path: str) -> bool:
    return any(_SECRETISH.search(seg) and seg != "secrets" for seg in re.split(r"[.\[\]]", path) if seg)


def _has_control(text: str) -> bool:
    """Control characters and Unicode line/paragraph separators (what "\\t", "\\P" ... give in double quotes)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


# ---------------------------------------------------------------------------------------------
# Checks on single values
# ---------------------------------------------------------------------------------------------

_REQUIRED = object()
_BAD = object()                 # "invalid, already reported"
_BOOL_WORDS = {"yes": True, "no": False, "on": True, "off": False, "y": True, "n": False}
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+\Z")


def _quote_yaml(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind_of(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return f"a {type(value).__name__}"


class _Checker:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: str, message: str, hint: str = "", node: _N | None = None) -> None:
        self.problems.append(Problem(path, message, hint, node.line if node is not None else None))

    # -- containers ------------------------------------------------------------------------
    def mapping(self, node: _N | None, path: str, known: Iterable[str], *, what: str = "a mapping",
                elsewhere: Mapping[str, str] | None = None) -> dict[str, _N] | None:
        """The keys of a mapping section. Absent or null sections are empty. None if unusable."""
        known = tuple(known)
        if node is None or (node.kind == _SCALAR and node.value is None):
            return {}
        if node.kind != _MAP:
            self.add(path, f"expected {what}, got {self.describe(node, path)}",
                     f"write it as keys under {path}:" if path else
                     "a parameter file is a mapping of keys such as environment:, instances:", node)
            return None
        out: dict[str, _N] = {}
        first_line: dict[str, int | None] = {}
        for knode, vnode in node.value:
            key = knode.value
            if not isinstance(key, str):
                shown = knode.raw if knode.raw is not None else _short(key)
                kpath = _join(path, str(shown))
                hint = self._suggest(str(shown), known, path, elsewhere)
                if knode.raw is not None and isinstance(key, int) and vnode.value is None:
                    hint = ("inside { } a comma separates entries: quote a value that holds a comma, "
                            "e.g. server: 'sql01.example.com,1433'")
                self.add(kpath, f"key {shown} is not a name (YAML reads it as {_kind_of(key)})", hint, knode)
                self._note_secret(kpath, vnode)
                continue
            kpath = _join(path, key if re.fullmatch(r"[\w-]+", key) else _short(key))
            if key in out:
                where = f", first written at line {first_line[key]}" if first_line.get(key) else ""
                self.add(kpath, f"duplicate key{where}",
                         "keep only one; YAML would silently use the last one", knode)
                self._note_secret(kpath, vnode)
                continue
            if key not in known:
                self.add(kpath, "unknown key", self._suggest(key, known, path, elsewhere), knode)
                self._note_secret(kpath, vnode)
                first_line[key] = knode.line
                out.setdefault(key, None)          # marks it seen for duplicate detection
                continue
            out[key] = vnode
            first_line[key] = knode.line
        return {k: v for k, v in out.items() if v is not None}

    def _suggest(self, key: str, known: tuple[str, ...], path: str,
                 elsewhere: Mapping[str, str] | None) -> str:
        low = key.lower().strip()
        if not path and low in RUN_PARAMETERS:
            return (f"{low} is given per run (papermill -p {low} ... or mirrorkit run), "
                    f"not in the parameter file; remove it")
        for k in known:
            if k == low or k == low.replace("-", "_").replace(" ", "_"):
                return f"write {_join(path, k)} (keys are lower case with underscores)"
        close = difflib.get_close_matches(low, known, n=1, cutoff=0.6)
        if not close:
            close = [k for k in known if low in k.split("_")][:1]
        if close:
            return f"did you mean {_join(path, close[0])}?"
        if elsewhere and low in elsewhere:
            home = elsewhere[low]
            if home == "instances[]":
                return f"{low} belongs in each item of instances: (instances[].{low})"
            return f"{low} belongs under {home}: write it as {home}.{low}"
        return "remove it; the keys here are " + ", ".join(known)

    def _note_secret(self, path: str, vnode: _N, seen: set[int] | None = None) -> None:
        """A key whose name looks secret must hold a reference (or nothing); unknown subtrees too."""
        seen = set() if seen is None else seen
        if id(vnode) in seen or len(seen) > 10_000:
            return
        seen.add(id(vnode))
        if vnode.kind == _MAP:
            for k, v in vnode.value:
                self._note_secret(_join(path, k.value if isinstance(k.value, str) else str(k.raw or "?")), v, seen)
            return
        if vnode.kind == _SEQ:
            for i, v in enumerate(vnode.value):
                self._note_secret(f"{path}[{i}]", v, seen)
            return
        if not _SECRETISH.search(_last_key(path)) or _last_key(path) == "secrets":
            return
        if vnode.value is None or vnode.value is _UNREADABLE:
            return
        if isinstance(vnode.value, str):
            try:
                parse_secret_ref(vnode.value)
                return
            except ValueError:
                pass
        self.add(path, "looks like a secret value", _SECRET_FIX, vnode)

    def describe(self, node: _N, path: str) -> str:
        if _looks_secretish(path):
            return "a value (not shown)"
        if node.kind == _MAP:
            return "a mapping"
        if node.kind == _SEQ:
            return "a list"
        if node.raw is not None:
            if node.value is None and node.raw == "":
                return "no value"
            return _short(node.raw) if node.style else node.raw[:60]
        return _short(node.value)

    # -- scalars ---------------------------------------------------------------------------
    def text(self, node: _N | None, path: str, *, default: Any = _REQUIRED, nullable: bool = False,
             example: str = "...", strip_ok: bool = False, parent: _N | None = None) -> Any:
        """A string. Absent → default (or 'missing', at the parent's line); null → None when nullable."""
        if node is None:
            if default is _REQUIRED:
                self.add(path, "is missing", f"add {_last_key(path)}: {example}", parent)
                return _BAD
            return default
        key = _last_key(path)
        value = node.value
        if value is _UNREADABLE:
            return _BAD
        if value is None and nullable:
            return None
        if node.kind != _SCALAR:
            self.add(path, f"expected a string, got {self.describe(node, path)}",
                     f"write a single value: {key}: {example}", node)
            return _BAD
        if isinstance(value, str):
            if not value.strip():
                self.add(path, "is empty", f"write a value ({key}: {example})"
                         + ("" if default is _REQUIRED else " or remove the key for the default"), node)
                return _BAD
            if _has_control(value):
                hint = ("inside double quotes a backslash starts an escape (\\t, \\n, \\f ...); "
                        "write paths and HOST\\INSTANCE in single quotes")
                self.add(path, "contains control characters (a tab, a line or paragraph break ...)", hint, node)
                return _BAD
            if value != value.strip() and not strip_ok:
                self.add(path, "has leading or trailing spaces", "remove them", node)
                return _BAD
            return value.strip() if strip_ok else value
        self._wrong_type_for_string(node, path, example, default)
        return _BAD

    def _wrong_type_for_string(self, node: _N, path: str, example: str, default: Any) -> None:
        key = _last_key(path)
        value = node.value
        if _looks_secretish(path):
            self.add(path, "looks like a secret value", _SECRET_FIX, node)
            return
        if node.raw is not None and node.style is None:          # a YAML plain scalar
            raw = node.raw
            if isinstance(value, bool):
                self.add(path, f"unquoted {raw} is read by YAML as the boolean {str(value).lower()}",
                         f"quote it: {key}: {_quote_yaml(raw)}", node)
            elif value is None:
                if raw == "":
                    self.add(path, "has no value", f"write a value ({key}: {example})"
                             + ("" if default is _REQUIRED else " or remove the key for the default"), node)
                else:
                    self.add(path, f"unquoted {raw} is read by YAML as null (no value)",
                             f"quote it: {key}: {_quote_yaml(raw)}", node)
            elif isinstance(value, int) and _LEADING_ZERO.match(raw):
                self.add(path, f"unquoted {raw} is read by YAML as the octal number {value}",
                         f"quote it: {key}: {_quote_yaml(raw)}", node)
            elif isinstance(value, (int, float)):
                read = "" if str(value) == raw else f" ({value})"
                self.add(path, f"unquoted {raw} is read by YAML as a number{read}",
                         f"quote it: {key}: {_quote_yaml(raw)}", node)
            else:
                self.add(path, f"expected a string, got {_kind_of(value)}",
                         f"quote it: {key}: {_quote_yaml(raw)}", node)
            return
        if isinstance(value, bool):
            why = " — YAML reads yes/no/on/off as booleans"
        elif isinstance(value, (int, float)):
            why = " — YAML reads unquoted numbers as numbers (and 0123 as octal 83)"
        elif value is None:
            why = " — YAML reads null, ~ and an empty value as None"
        else:
            why = ""
        self.add(path, f"expected a string, got {self.describe(node, path)}{why}",
                 "quote it in the parameter file", node)

    def integer(self, node: _N | None, path: str, lo: int, hi: int, default: Any, *,
                nullable: bool = False, example: int | None = None) -> Any:
        if node is None:
            return default
        key = _last_key(path)
        value = node.value
        example = lo if example is None else example
        if value is _UNREADABLE:
            return _BAD
        if value is None and nullable:
            return None
        if node.kind == _SCALAR and isinstance(value, int) and not isinstance(value, bool):
            raw = node.raw
            if raw is not None and node.style is None:
                if _LEADING_ZERO.match(raw):
                    self.add(path, f"{raw} has a leading zero, and YAML 1.1 reads it as the octal number "
                                   f"{value}", f"write {key}: {raw.lstrip('+-0').replace('_', '') or 0}", node)
                    return _BAD
                if not _DECIMAL.match(raw):
                    self.add(path, f"{raw} is not written as a plain decimal integer (YAML reads it as "
                                   f"{value})", f"write {key}: {value}", node)
                    return _BAD
            if not lo <= value <= hi:
                self.add(path, f"{value} is outside {lo}–{hi}", f"write an integer from {lo} to {hi}", node)
                return _BAD
            return value
        shown = self.describe(node, path)
        if (node.kind == _SCALAR and isinstance(value, str) and node.raw is not None and node.style is None
                and re.fullmatch(r"[-+]?0[0-9]+", value)):
            self.add(path, f"{value} has a leading zero (YAML 1.1 reads 0-prefixed numbers as octal, "
                           "or as strings when they are not)", f"write {key}: {int(value)}", node)
            return _BAD
        if node.kind == _SCALAR and isinstance(value, str) and _DECIMAL.match(value.strip()):
            if node.raw is not None:
                self.add(path, f"is the string {shown}, not a number",
                         f"write it without quotes: {key}: {int(value.strip())}", node)
            else:
                self.add(path, f"expected an integer, got the string {shown}",
                         "write it without quotes in the parameter file", node)
            return _BAD
        if node.kind == _SCALAR and isinstance(value, bool):
            self.add(path, f"expected an integer {lo}–{hi}, got the boolean {shown}",
                     f"write a number: {key}: {example}", node)
            return _BAD
        if node.kind == _SCALAR and value is None and node.raw == "":
            self.add(path, "has no value", f"write {key}: {example} or remove the key for the default", node)
            return _BAD
        self.add(path, f"expected an integer {lo}–{hi}, got {shown}", f"write {key}: {example}", node)
        return _BAD

    def boolean(self, node: _N | None, path: str, default: bool) -> Any:
        if node is None:
            return default
        key = _last_key(path)
        value = node.value
        if value is _UNREADABLE:
            return _BAD
        if node.kind == _SCALAR and isinstance(value, bool):
            raw = node.raw
            if raw is not None and node.style is None and raw.lower() not in ("true", "false"):
                self.add(path, f"{raw} is read by YAML 1.1 as {str(value).lower()}, but yes/no/on/off are "
                               "easy to misread", f"write true or false: {key}: {str(value).lower()}", node)
                return _BAD
            return value
        shown = self.describe(node, path)
        if node.kind == _SCALAR and isinstance(value, str):
            word = value.strip().lower()
            fix = {"true": "true", "false": "false"}.get(word)
            if fix is None and word in _BOOL_WORDS:
                fix = str(_BOOL_WORDS[word]).lower()
            if node.raw is not None:
                self.add(path, f"expected a boolean, got the string {shown}",
                         f"write true or false without quotes: {key}: {fix or 'true'}", node)
            else:
                self.add(path, f"expected a boolean, got the string {shown}",
                         "write true or false without quotes in the parameter file", node)
            return _BAD
        self.add(path, f"expected a boolean, got {shown}", f"write true or false: {key}: false", node)
        return _BAD

    def choice(self, node: _N | None, path: str, choices: tuple[str, ...], default: Any, *,
               example: str | None = None, parent: _N | None = None) -> Any:
        value = self.text(node, path, default=default, example=example or choices[0], strip_ok=True,
                          parent=parent)
        if value is _BAD or value is None or node is None:
            return value
        norm = " ".join(value.lower().split())
        if norm in choices:
            return norm
        options = " | ".join(choices)
        close = difflib.get_close_matches(norm, choices, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? write one of {options}" if close else f"write one of {options}"
        self.add(path, f"{_short(value)} is not one of {options}", hint, node)
        return _BAD

    def secret(self, node: _N | None, path: str, *, example: str) -> Any:
        """A secret reference. Absent or null → None; anything else that is no reference → rejected."""
        if node is None or (node.kind == _SCALAR and node.value is None):
            return None
        value = node.value
        if value is _UNREADABLE:
            return _BAD
        if node.kind != _SCALAR:
            self.add(path, f"expected a secret reference, got {'a mapping' if node.kind == _MAP else 'a list'}",
                     f"write a reference such as {example}", node)
            return _BAD
        if not isinstance(value, str):
            self.add(path, "looks like a secret value", _SECRET_FIX, node)
            return _BAD
        try:
            return parse_secret_ref(value)
        except _NotAReference:
            self.add(path, "looks like a secret value", _SECRET_FIX, node)
        except ValueError as exc:       # a malformed reference: not a secret, and not echoed either
            self.add(path, "is not a valid secret reference", str(exc), node)
        return _BAD

    def template(self, node: _N | None, path: str, placeholder: str, default: str) -> Any:
        value = self.text(node, path, default=default, example=_quote_yaml(default))
        if value is _BAD or node is None:
            return value
        try:
            fields = [(f, spec, conv) for _lit, f, spec, conv in string.Formatter().parse(value)
                      if f is not None]
        except ValueError:
            self.add(path, "has an unmatched { or }",
                     f"write {{{placeholder}}} for the {placeholder} name and {{{{ or }}}} for a literal brace",
                     node)
            return _BAD
        for fname, spec, conv in fields:
            if fname != placeholder or spec or conv:
                shown = "{" + fname + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                self.add(path, f"unknown placeholder {shown}",
                         f"the only placeholder here is {{{placeholder}}}; write {{{{ or }}}} for a literal brace",
                         node)
                return _BAD
        return value


# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------

_INSTANCE_KEYS = ("name", "server", "role", "endpoint_address", "endpoint_port", "connection")
_ENDPOINT_KEYS = ("name", "port", "listener_ip", "encryption", "algorithm", "partner_role", "allow_alter")
_CERT_KEYS = ("name", "subject", "lifetime_days", "backdate_hours", "transfer", "file_share",
              "private_key_backup")
_PKB_KEYS = ("directory", "password")
_LOGIN_KEYS = ("login", "user")
_CONN_KEYS = ("driver", "authentication", "user", "password", "encrypt", "trust_server_certificate",
              "host_name_in_certificate", "login_timeout", "tds_version")
_SECRET_KEYS = ("master_key_password",)
_VERIFY_KEYS = ("expiry_warning_days", "errorlog_hours")

#: Every key a parameter file may hold, as documented (``instances[].name``, ``endpoint.port`` ...).
SCHEMA_KEYS: tuple[str, ...] = (
    ("environment", "topology", "instances")
    + tuple(f"instances[].{k}" for k in _INSTANCE_KEYS)
    + tuple(f"endpoint.{k}" for k in _ENDPOINT_KEYS)
    + tuple(f"certificate.{k}" for k in _CERT_KEYS if k != "private_key_backup")
    + tuple(f"certificate.private_key_backup.{k}" for k in _PKB_KEYS)
    + tuple(f"logins.{k}" for k in _LOGIN_KEYS)
    + tuple(f"connection.{k}" for k in _CONN_KEYS)
    + tuple(f"secrets.{k}" for k in _SECRET_KEYS)
    + tuple(f"verify.{k}" for k in _VERIFY_KEYS)
)

# Where a key belongs, for "unknown key" hints given at the wrong level.
_HOME: dict[str, str] = {}
for _section, _keys in (("endpoint", _ENDPOINT_KEYS), ("certificate", _CERT_KEYS),
                        ("certificate.private_key_backup", _PKB_KEYS), ("logins", _LOGIN_KEYS),
                        ("connection", _CONN_KEYS), ("secrets", _SECRET_KEYS), ("verify", _VERIFY_KEYS),
                        ("instances[]", _INSTANCE_KEYS)):
    for _k in _keys:
        _HOME.setdefault(_k, _section)
_HOME["port"] = "endpoint"
_HOME["name"] = "instances[]"
_HOME["password"] = "connection"
_HOME["user"] = "connection"
_HOME["directory"] = "certificate.private_key_backup"

_SYSNAME = 128
_SUBJECT_MAX = 64
_ENV_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*"
                          r"[A-Za-z0-9_])?)*\.?\Z")
_INSTANCE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$#&]{0,15}\Z")
_TDS_VERSION_RE = re.compile(r"(auto|\d+\.\d+)\Z")
_LOCAL_HOSTS = (".", "(local)")


def _check_host(text: str) -> str | None:
    """None if ``text`` is a host name or IP address peers can use, else why not."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        try:
            ipaddress.IPv6Address(text)
            return None
        except ValueError:
            return "is not an IPv6 address"
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
            return None
        except ValueError:
            return "contains ':'"
    if re.fullmatch(r"[0-9.]+", text):
        try:
            ipaddress.IPv4Address(text)
            return None
        except ValueError:
            return "is not a valid IPv4 address"
    if len(text) > 253 or not _HOSTNAME_RE.match(text):
        return "is not a host name or IP address"
    return None


def _parse_server(ck: _Checker, node: _N, path: str, value: str):
    """HOST,PORT | HOST\\INSTANCE | HOST\\INSTANCE,PORT → (host, instance_name, port) or _BAD."""
    example = "'sql01.example.com,1433' or 'SQL01\\PROD'"
    text = value
    if re.match(r"(?i)(tcp|np|lpc|admin):", text):
        ck.add(path, "has a protocol prefix", f"write the server without it, e.g. server: {example}", node)
        return _BAD
    if re.fullmatch(r"[^:,\\\[\]]+:[0-9]+", text):
        host, _, port_ = text.partition(":")
        ck.add(path, "separates host and port with ':'",
               f"SQL Server writes HOST,PORT with a comma: server: {_quote_yaml(host.strip() + ',' + port_)}", node)
        return _BAD
    hostpart, comma, portpart = text.rpartition(",") if "," in text else (text, "", "")
    hostpart, portpart = hostpart.strip(), portpart.strip()
    port = None
    if comma:
        if not re.fullmatch(r"[0-9]+", portpart):
            ck.add(path, f"port {_short(portpart)} is not a number", f"write server: {example}", node)
            return _BAD
        port = int(portpart)
        if not 1 <= port <= 65535:
            ck.add(path, f"port {port} is outside 1–65535", f"write server: {example}", node)
            return _BAD
    host, backslash, inst = hostpart.partition("\\")
    host, inst = host.strip(), inst.strip()
    if backslash and not _INSTANCE_RE.match(inst):
        ck.add(path, f"instance name {_short(inst)} is not a SQL Server instance name "
                     "(a letter or _, then up to 15 letters, digits, _ $ # &)",
               f"write server: {example}", node)
        return _BAD
    if not comma and not backslash:
        ck.add(path, "has neither a port nor an instance name",
               f"write 'HOST,PORT' ({_short(host + ',1433')} for the default instance) or 'HOST\\INSTANCE'",
               node)
        return _BAD
    if not host:
        ck.add(path, "has no host", f"write server: {example}", node)
        return _BAD
    if host.lower() not in _LOCAL_HOSTS:
        why = _check_host(host)
        if why:
            ck.add(path, f"host {_short(host)} {why}", f"write server: {example}", node)
            return _BAD
    return host, (inst if backslash else None), port


def _check_endpoint_address(ck: _Checker, node: _N | None, path: str, value: str) -> Any:
    if "://" in value or re.fullmatch(r"[^:\[\]]+:[0-9]*", value) or re.fullmatch(r"\[.*\]:[0-9]*", value):
        ck.add(path, "holds more than the host", "write the host only (the port goes in endpoint_port), "
               "e.g. endpoint_address: sql01.example.com", node)
        return _BAD
    why = _check_host(value)
    if why:
        ck.add(path, f"{_short(value)} {why}", "write the host name or IP address peers connect to, "
               "e.g. endpoint_address: sql01.example.com", node)
        return _BAD
    return value[1:-1] if value.startswith("[") else value


def _connection_fields(ck: _Checker, node: _N | None, path: str) -> dict[str, Any] | None:
    """The connection keys given at ``path`` (validated); absent keys are left out."""
    keys = ck.mapping(node, path, _CONN_KEYS, elsewhere=_HOME)
    if keys is None:
        return None
    out: dict[str, Any] = {}
    spec = {
        "driver": lambda n, p: ck.text(n, p, default=_BAD, example="'ODBC Driver 18 for SQL Server'"),
        "authentication": lambda n, p: ck.choice(n, p, ("sql", "windows"), _BAD),
        "user": lambda n, p: ck.text(n, p, default=_BAD, nullable=True, example="mirrorkit_admin"),
        "password": lambda n, p: ck.secret(n, p, example="env:MIRRORKIT_SQL_PASSWORD"),
        "encrypt": lambda n, p: ck.choice(n, p, ("yes", "no", "strict", "optional"), _BAD),
        "trust_server_certificate": lambda n, p: ck.boolean(n, p, _BAD),
        "host_name_in_certificate": lambda n, p: ck.text(n, p, default=_BAD, nullable=True,
                                                         example="sql01.example.com"),
        "login_timeout": lambda n, p: ck.integer(n, p, 1, 300, _BAD, example=15),
        "tds_version": lambda n, p: ck.text(n, p, default=_BAD, example="'7.4'"),
    }
    for key, vnode in keys.items():
        kpath = _join(path, key)
        value = spec[key](vnode, kpath)
        if key == "tds_version" and isinstance(value, str) and not _TDS_VERSION_RE.match(value):
            ck.add(kpath, f"{_short(value)} is not a TDS version", "write e.g. tds_version: '7.4'", vnode)
            value = _BAD
        if value is _BAD:
            out[key] = _BAD
        elif value is not None or key in ("user", "password", "host_name_in_certificate"):
            out[key] = value
    return out


def _validate(root: _N, ck: _Checker) -> Environment | None:
    top = ck.mapping(root, "", NOTEBOOK_PARAMETERS, what="a mapping of parameters", elsewhere=_HOME)
    if top is None:
        return None

    # environment, topology ------------------------------------------------------------------
    env_name = ck.text(top.get("environment"), "environment", example="prod", parent=None)
    if isinstance(env_name, str):
        if not _ENV_RE.match(env_name) or set(env_name) == {"."}:
            ck.add("environment", f"{_short(env_name)} is not a valid environment name",
                   "use letters, digits, _ . and - only (not just dots), e.g. environment: prod-east",
                   top.get("environment"))
            env_name = _BAD
    topology = ck.choice(top.get("topology"), "topology", ("mirroring", "availability_group"), None)

    # endpoint -----------------------------------------------------------------------------------
    ep = ck.mapping(top.get("endpoint"), "endpoint", _ENDPOINT_KEYS, elsewhere=_HOME) or {}
    ep_name = ck.text(ep.get("name"), "endpoint.name", default="Mirroring", example="Mirroring")
    if isinstance(ep_name, str) and len(ep_name) > _SYSNAME:
        ck.add("endpoint.name", f"is {len(ep_name)} characters long (at most {_SYSNAME})", "shorten it",
               ep.get("name"))
        ep_name = _BAD
    ep_port = ck.integer(ep.get("port"), "endpoint.port", 1024, 32767, 5022, example=5022)
    listener_ip = ck.text(ep.get("listener_ip"), "endpoint.listener_ip", default="all", example="all",
                          strip_ok=True)
    if isinstance(listener_ip, str):
        if listener_ip.lower() == "all":
            listener_ip = "all"
        else:
            try:
                listener_ip = str(ipaddress.IPv4Address(listener_ip))
            except ValueError:
                ck.add("endpoint.listener_ip", f"{_short(listener_ip)} is neither all nor an IPv4 address",
                       "write listener_ip: all (or an IPv4 address such as 10.0.0.5)", ep.get("listener_ip"))
                listener_ip = _BAD
    encryption = ck.choice(ep.get("encryption"), "endpoint.encryption", ("required", "supported", "disabled"),
                           "required")
    algorithm = ck.choice(ep.get("algorithm"), "endpoint.algorithm", ("aes", "rc4", "aes rc4", "rc4 aes"),
                          None)
    if encryption == "disabled":
        if ep.get("algorithm") is not None and algorithm is not None:
            ck.add("endpoint.algorithm", "is not allowed with encryption: disabled",
                   "remove algorithm, or set encryption: required", ep.get("algorithm"))
            algorithm = _BAD
    elif algorithm is None:
        algorithm = "aes"
    partner_role = ck.choice(ep.get("partner_role"), "endpoint.partner_role", ("partner", "all"), "all")
    allow_alter = ck.boolean(ep.get("allow_alter"), "endpoint.allow_alter", False)

    # certificate --------------------------------------------------------------------------------
    ct = ck.mapping(top.get("certificate"), "certificate", _CERT_KEYS, elsewhere=_HOME) or {}
    cert_name = ck.template(ct.get("name"), "certificate.name", "instance", CertificateSettings.name)
    subject = ck.template(ct.get("subject"), "certificate.subject", "instance", CertificateSettings.subject)
    lifetime = ck.integer(ct.get("lifetime_days"), "certificate.lifetime_days", 1, 36500, 1095, example=1095)
    backdate = ck.integer(ct.get("backdate_hours"), "certificate.backdate_hours", 0, 720, 24, example=24)
    transfer = ck.choice(ct.get("transfer"), "certificate.transfer", ("binary", "file"), "binary")
    file_share = ck.text(ct.get("file_share"), "certificate.file_share", default=None, nullable=True,
                         example="'\\\\fileserver\\certs'")
    if transfer == "file" and file_share is None:
        ck.add("certificate.file_share", "is required with transfer: file",
               "add file_share: '\\\\fileserver\\certs' (a directory every instance reaches under that path), "
               "or use transfer: binary", ct.get("transfer"))
    pkb_node = ct.get("private_key_backup")
    pkb = ck.mapping(pkb_node, "certificate.private_key_backup", _PKB_KEYS, elsewhere=_HOME)
    private_key_backup: Any = None
    if pkb is None:
        private_key_backup = _BAD
    elif pkb:
        directory = ck.text(pkb.get("directory"), "certificate.private_key_backup.directory", default=None,
                            nullable=True, example="'D:\\Backup\\certs'")
        pvk_pw = ck.secret(pkb.get("password"), "certificate.private_key_backup.password",
                           example="env:MIRRORKIT_PVK_PASSWORD")
        if directory is not None and directory is not _BAD and pvk_pw is None:
            ck.add("certificate.private_key_backup.password", "is required with directory",
                   "add password: env:MIRRORKIT_PVK_PASSWORD (a reference, never the password itself)",
                   pkb.get("directory"))
        elif directory is None and pvk_pw not in (None, _BAD):
            ck.add("certificate.private_key_backup.directory",
                   "is missing, so no backup would be taken although a password is given",
                   "add directory: 'D:\\Backup\\certs' (a server-side directory), or remove private_key_backup",
                   pkb.get("password"))
        if isinstance(directory, str) and isinstance(pvk_pw, SecretRef):
            private_key_backup = PrivateKeyBackup(directory, pvk_pw)
        elif directory is not None or pvk_pw is not None:
            private_key_backup = _BAD

    # logins, secrets, verify ---------------------------------------------------------------------
    lg = ck.mapping(top.get("logins"), "logins", _LOGIN_KEYS, elsewhere=_HOME) or {}
    login_t = ck.template(lg.get("login"), "logins.login", "peer", LoginSettings.login)
    user_t = ck.template(lg.get("user"), "logins.user", "peer", LoginSettings.user)
    sc = ck.mapping(top.get("secrets"), "secrets", _SECRET_KEYS, elsewhere=_HOME) or {}
    dmk = ck.secret(sc.get("master_key_password"), "secrets.master_key_password",
                    example="env:MIRRORKIT_MASTER_KEY_PASSWORD")
    vf = ck.mapping(top.get("verify"), "verify", _VERIFY_KEYS, elsewhere=_HOME) or {}
    expiry_days = ck.integer(vf.get("expiry_warning_days"), "verify.expiry_warning_days", 1, 3650, 30,
                             example=30)
    errorlog_hours = ck.integer(vf.get("errorlog_hours"), "verify.errorlog_hours", 1, 8760, 24, example=24)

    # connection -----------------------------------------------------------------------------------
    conn_node = top.get("connection")
    base_conn = _connection_fields(ck, conn_node, "connection")

    # instances -------------------------------------------------------------------------------------
    inst_node = top.get("instances")
    raw_instances: list[dict[str, Any]] = []
    instances_ok = True
    if inst_node is None or (inst_node.kind == _SCALAR and inst_node.value is None):
        ck.add("instances", "is missing" if inst_node is None else "is empty",
               "list the instances: instances: [{name: SQL01, server: 'sql01.example.com,1433', role: partner}, ...]",
               inst_node)
        instances_ok = False
    elif inst_node.kind != _SEQ:
        ck.add("instances", f"expected a list of instances, got {ck.describe(inst_node, 'instances')}",
               "write each instance as a list item: '- name: SQL01' with server: and role: under it", inst_node)
        instances_ok = False
    elif not inst_node.value:
        ck.add("instances", "is empty", "list the instances, each with name:, server: and role:", inst_node)
        instances_ok = False
    else:
        for i, item in enumerate(inst_node.value):
            p = f"instances[{i}]"
            keys = ck.mapping(item, p, _INSTANCE_KEYS, what="an instance (a mapping with name, server, role)",
                              elsewhere=_HOME)
            if keys is None:
                instances_ok = False
                continue
            rec: dict[str, Any] = {"index": i, "nodes": keys}
            rec["name"] = ck.text(keys.get("name"), f"{p}.name", example="SQL01  (as @@SERVERNAME reports it)",
                                  parent=item)
            if isinstance(rec["name"], str) and len(rec["name"]) > _SYSNAME:
                ck.add(f"{p}.name", f"is {len(rec['name'])} characters long (at most {_SYSNAME})",
                       "write the name @@SERVERNAME reports", keys.get("name"))
                rec["name"] = _BAD
            server = ck.text(keys.get("server"), f"{p}.server", example="'sql01.example.com,1433'", parent=item)
            rec["server"] = server
            rec["parsed"] = _parse_server(ck, keys["server"], f"{p}.server", server) \
                if isinstance(server, str) else _BAD
            rec["role"] = ck.choice(keys.get("role"), f"{p}.role", ("partner", "witness", "replica"), _REQUIRED,
                                    example="partner  (or witness, replica)", parent=item)
            addr = ck.text(keys.get("endpoint_address"), f"{p}.endpoint_address", default=None, nullable=True,
                           example="sql01.example.com")
            if isinstance(addr, str):
                addr = _check_endpoint_address(ck, keys.get("endpoint_address"), f"{p}.endpoint_address", addr)
            rec["endpoint_address"] = addr
            rec["endpoint_port"] = ck.integer(keys.get("endpoint_port"), f"{p}.endpoint_port", 1024, 32767,
                                              None, nullable=True, example=5022)
            rec["connection"] = _connection_fields(ck, keys.get("connection"), f"{p}.connection")
            raw_instances.append(rec)

    # -- semantic rules ---------------------------------------------------------------------------
    built: list[Instance] = []
    for rec in raw_instances:
        p = f"instances[{rec['index']}]"
        parsed = rec["parsed"]
        if parsed is _BAD:
            instances_ok = False
            host = inst_part = port = None
        else:
            host, inst_part, port = parsed
        addr = rec["endpoint_address"]
        if addr is None and host is not None:
            if host.lower() in _LOCAL_HOSTS:
                ck.add(f"{p}.endpoint_address", f"is missing, and the server's host {host} is a local alias "
                       "that peers cannot use", "add endpoint_address: <the host name peers connect to>",
                       rec["nodes"].get("server"))
                addr = _BAD
            else:
                addr = host[1:-1] if host.startswith("[") else host
        eport = rec["endpoint_port"] if rec["endpoint_port"] is not None else ep_port
        conn = None
        if base_conn is not None and rec["connection"] is not None:
            merged = {**base_conn, **rec["connection"]}
            if _BAD not in merged.values():
                conn = ConnectionSettings(**merged)
        values = (rec["name"], rec["server"], rec["role"], addr, eport, conn)
        if any(v is _BAD or v is None for v in values):
            instances_ok = False
            continue
        built.append(Instance(rec["name"], rec["server"], host, port, rec["role"], addr, eport, conn,
                              instance_name=inst_part))

    # topology
    roles = [r["role"] for r in raw_instances]
    if raw_instances and all(isinstance(r, str) for r in roles):
        topology = _check_topology(ck, raw_instances, topology, top.get("topology"))
    elif topology is None and instances_ok is False:
        topology = _BAD

    _check_unique(ck, raw_instances, ep_port)
    if isinstance(listener_ip, str) and listener_ip != "all":
        for rec in raw_instances:
            addr = rec["endpoint_address"] if rec["endpoint_address"] not in (None, _BAD) else (
                rec["parsed"][0] if rec["parsed"] is not _BAD else None)
            if addr is None:
                continue
            try:
                ip = ipaddress.ip_address(addr.strip("[]"))
            except ValueError:
                continue
            if str(ip) != listener_ip:
                ck.add("endpoint.listener_ip",
                       f"is {listener_ip}, but peers reach instances[{rec['index']}] at {ip}",
                       "write listener_ip: all (the endpoint then listens on every address)", ep.get("listener_ip"))
                listener_ip = _BAD
                break

    # connection requirements, per instance (after merging overrides)
    _check_auth(ck, raw_instances, base_conn)

    # names from templates
    names = [r["name"] for r in raw_instances if isinstance(r["name"], str)]
    if names and len(names) == len(raw_instances) and len({n.lower() for n in names}) == len(names):
        _check_names(ck, names, cert_name, subject, login_t, user_t, ct, lg)

    if ck.problems:
        return None
    base = ConnectionSettings(**base_conn)  # type: ignore[arg-type]
    return Environment(
        environment=env_name, topology=topology, instances=tuple(built),
        endpoint=EndpointSettings(ep_name, ep_port, listener_ip, encryption, algorithm, partner_role, allow_alter),
        certificate=CertificateSettings(cert_name, subject, lifetime, backdate, transfer, file_share,
                                        private_key_backup),
        logins=LoginSettings(login_t, user_t),
        connection=base,
        secrets=SecretSettings(dmk),
        verify=VerifySettings(expiry_days, errorlog_hours),
        source=ck.source,
    )


def _check_topology(ck: _Checker, recs: list[dict[str, Any]], topology: Any, topo_node: _N | None) -> Any:
    roles = [r["role"] for r in recs]
    names = [r["name"] if isinstance(r["name"], str) else f"instances[{r['index']}]" for r in recs]
    partners = [n for n, r in zip(names, roles) if r == "partner"]
    witnesses = [(rec, n) for rec, n, r in zip(recs, names, roles) if r == "witness"]
    replicas = [n for n, r in zip(names, roles) if r == "replica"]
    if replicas and (partners or witnesses):
        ck.add("instances", f"mixes replicas ({', '.join(replicas)}) with mirroring partners or a witness "
               f"({', '.join(partners + [n for _, n in witnesses])})",
               "use role: replica for every instance of an availability group, or partner/witness for "
               "database mirroring; the two never mix")
        return _BAD
    inferred = "availability_group" if replicas else "mirroring"
    if isinstance(topology, str) and topology != inferred:
        if topology == "mirroring":
            hint = "write topology: availability_group, or give the instances role: partner / witness"
        else:
            hint = "write topology: mirroring, or give every instance role: replica"
        ck.add("topology", f"is {topology}, but the instances have the roles of {inferred.replace('_', ' ')}",
               hint, topo_node)
        return _BAD
    if inferred == "mirroring":
        if len(witnesses) > 1:
            for rec, n in witnesses[1:]:
                ck.add(f"instances[{rec['index']}].role", f"is a second witness ({n}); mirroring has at most one",
                       "keep one witness; give the others role: partner or remove them", rec["nodes"].get("role"))
        if len(partners) != 2:
            if witnesses and len(partners) < 2:
                what = f"has a witness but {len(partners)} partner{'s' if len(partners) != 1 else ''}"
                what += f" ({', '.join(partners)})" if partners else ""
                what += "; a witness needs two partners"
            else:
                what = (f"has {len(partners)} mirroring partner{'s' if len(partners) != 1 else ''}"
                        + (f" ({', '.join(partners)})" if partners else "") + "; mirroring needs exactly two")
            ck.add("instances", what, "give exactly two instances role: partner (and at most one role: witness), "
                   "or use role: replica and topology: availability_group for more")
            return _BAD
    else:
        if not 2 <= len(replicas) <= 9:
            ck.add("instances", f"has {len(replicas)} replica{'s' if len(replicas) != 1 else ''}; "
                   "an availability group has 2–9", "list between two and nine instances with role: replica")
            return _BAD
    return inferred if topology is None else topology


def _check_unique(ck: _Checker, recs: list[dict[str, Any]], ep_port: Any) -> None:
    seen_names: dict[str, int] = {}
    seen_servers: dict[tuple, int] = {}
    seen_endpoints: dict[tuple, int] = {}
    tds_ports: dict[tuple, int] = {}
    for rec in recs:
        i, p = rec["index"], f"instances[{rec['index']}]"
        if isinstance(rec["name"], str):
            key = rec["name"].lower()
            if key in seen_names:
                ck.add(f"{p}.name", f"duplicate instance name {_short(rec['name'])} "
                       f"(also instances[{seen_names[key]}]; names are compared case-insensitively)",
                       "give every instance its own @@SERVERNAME", rec["nodes"].get("name"))
            else:
                seen_names[key] = i
        if rec["parsed"] is not _BAD:
            host, inst, port = rec["parsed"]
            skey = (host.lower(), (inst or "").lower(), port)
            if skey in seen_servers:
                rec["duplicate_server"] = True
                ck.add(f"{p}.server", f"duplicate server {_short(rec['server'])} "
                       f"(also instances[{seen_servers[skey]}])",
                       "each instance needs its own server address", rec["nodes"].get("server"))
            else:
                seen_servers[skey] = i
            if port is not None:
                tds_ports.setdefault((host.lower().strip("[]"), port), i)
    for rec in recs:
        i, p = rec["index"], f"instances[{rec['index']}]"
        addr = rec["endpoint_address"]
        if addr is None and rec["parsed"] is not _BAD:
            addr = rec["parsed"][0].strip("[]")
        port = rec["endpoint_port"] if rec["endpoint_port"] is not None else ep_port
        if (not isinstance(addr, str) or not isinstance(port, int) or addr.lower() in _LOCAL_HOSTS
                or rec.get("duplicate_server")):
            continue
        ekey = (addr.lower(), port)
        where = f"{p}.endpoint_port" if rec["endpoint_port"] is not None else f"{p}.endpoint_address"
        node = rec["nodes"].get("endpoint_port") or rec["nodes"].get("endpoint_address") or rec["nodes"].get("server")
        if ekey in seen_endpoints:
            ck.add(where, f"endpoint {addr}:{port} is also the endpoint of instances[{seen_endpoints[ekey]}]",
                   "give each instance its own endpoint_address or endpoint_port", node)
        else:
            seen_endpoints[ekey] = i
        if ekey in tds_ports:
            ck.add(where, f"endpoint port {port} is the TDS port of instances[{tds_ports[ekey]}] on the same host",
                   "use another endpoint_port (5022 by convention)", node)


def _check_auth(ck: _Checker, recs: list[dict[str, Any]], base: dict[str, Any] | None) -> None:
    if base is None:
        return
    missing: dict[tuple[str, str], list[str]] = {}
    for rec in recs:
        over = rec["connection"]
        if over is None:
            continue
        merged = {**base, **over}
        if merged.get("authentication", "sql") != "sql":
            continue
        where = f"instances[{rec['index']}].connection" if "authentication" in over else "connection"
        label = rec["name"] if isinstance(rec["name"], str) else f"instances[{rec['index']}]"
        for key in ("user", "password"):
            if merged.get(key) is None:
                missing.setdefault((where, key), []).append(label)
    for (where, key), labels in missing.items():
        example = "mirrorkit_admin" if key == "user" else "env:MIRRORKIT_SQL_PASSWORD"
        used = f" (needed by {', '.join(labels)})" if where == "connection" else ""
        ck.add(f"{where}.{key}", f"is required with authentication: sql{used}",
               f"add {key}: {example}, or use authentication: windows")


def _check_names(ck: _Checker, names: list[str], cert_t: Any, subject_t: Any, login_t: Any, user_t: Any,
                 ct: dict[str, _N], lg: dict[str, _N]) -> None:
    def uniq(template: Any, path: str, placeholder: str, node: _N | None, transform=lambda s: s,
             what: str = "name") -> None:
        if not isinstance(template, str):
            return
        expanded: dict[str, str] = {}
        too_long, backslash = [], []
        for n in names:
            value = _expand(template, placeholder, transform(n))
            if value.lower() in expanded:
                ck.add(path, f"gives the same {what} {_short(value)} for {expanded[value.lower()]} and {n}",
                       f"include {{{placeholder}}} in the template so every instance gets its own", node)
                return
            expanded[value.lower()] = n
            if len(value) > _SYSNAME:
                too_long.append(n)
            if what == "login" and "\\" in value:
                backslash.append(n)
        if too_long:
            ck.add(path, f"gives names longer than {_SYSNAME} characters for {', '.join(too_long)}",
                   "shorten the template", node)
        if backslash:
            ck.add(path, f"gives login names with a backslash for {', '.join(backslash)}; "
                   "SQL Server logins cannot contain one", "remove the backslash from the template", node)

    uniq(cert_t, "certificate.name", "instance", ct.get("name"), what="certificate name")
    uniq(login_t, "logins.login", "peer", lg.get("login"), _principal_part, what="login")
    uniq(user_t, "logins.user", "peer", lg.get("user"), _principal_part, what="user")
    if isinstance(subject_t, str):
        long_ = [(n, len(_expand(subject_t, "instance", n))) for n in names]
        long_ = [(n, k) for n, k in long_ if k > _SUBJECT_MAX]
        if long_:
            worst = ", ".join(f"{n} ({k})" for n, k in long_)
            ck.add("certificate.subject", f"is longer than {_SUBJECT_MAX} characters after expansion for {worst}",
                   "shorten the template, e.g. subject: '{instance} DBM endpoint' (SQL Server on Linux "
                   "enforces 64)", ct.get("subject"))


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def _finish(ck: _Checker, root: _N | None) -> Environment:
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
    """Check and return the parameter file whose bytes are ``data`` (``source`` names it in messages)."""
    ck = _Checker(source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParameterError(source, [Problem("", f"is not UTF-8 text (byte {exc.start})",
                                              "save the file as UTF-8")]) from None
    try:
        loader = _PapermillLoader(text)
    except yaml.YAMLError as exc:           # the reader refuses control characters up front
        reason = getattr(exc, "reason", None) or "unreadable YAML"
        raise ParameterError(source, [Problem("", f"is not valid YAML: {reason}",
                                              "remove control characters and save the file as UTF-8")]) from None
    root: _N | None = None
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
            root = _YamlConverter(loader, ck.problems).convert(node, "")
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
    ck = _Checker(source)
    if not isinstance(values, Mapping):
        raise ParameterError(source, [Problem("", f"expected a mapping of parameters, got {_kind_of(values)}",
                                              "pass {name: value} for the keys in NOTEBOOK_PARAMETERS")])
    cleaned = {k: v for k, v in values.items() if not (v is None and k in NOTEBOOK_PARAMETERS)}
    try:
        root = _from_python(cleaned)
    except RecursionError:
        raise ParameterError(source, [Problem("", "is nested too deeply", "pass the documented keys only")]) from None
    return _finish(ck, root)
