"""The parameter model: every key of a parameter file, declared once.

Each key is a field of the frozen dataclass its value lands in (``EndpointSettings.port`` is
``endpoint.port``), declared with one of the helpers below: its kind, default, range or choices,
the example the error messages suggest, and its help text. From these declarations come

* the validator's scalar checks (mirrorkit.config.parameters drives its checker with them),
* ``SCHEMA_KEYS`` and the key lists the validator and its hints use,
* the reference table in docs/parameters.md and parameters/schema.json (mirrorkit.config.schema).

Rules that relate several keys (topology, uniqueness, authentication, file_share with transfer: file,
server syntax ...) are functions in the validator, not declarations.
Fields without a declaration (``Instance.host`` ...) are derived by the validator.
"""
from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass, field, fields
from typing import Any, Iterator

from .problems import ParameterError, Problem
from .references import SecretRef

__all__ = [
    "NOTEBOOK_PARAMETERS", "RUN_PARAMETERS", "SCHEMA_KEYS", "NOTEBOOK_SOURCE", "REQUIRED", "OPTIONAL", "DEFAULTS", "Key",
    "Environment", "Instance", "EndpointSettings", "CertificateSettings", "PrivateKeyBackup",
    "LoginSettings", "ConnectionSettings", "SecretSettings", "VerifySettings",
    "keys_of", "walk", "home_sections", "SYSNAME", "SUBJECT_MAX",
]

NOTEBOOK_SOURCE = "<notebook parameters>"
#: Parameters given per run (papermill -p), never in a parameter file.
RUN_PARAMETERS: tuple[str, ...] = ("target", "mode", "change_id", "certificate_dir", "interactive")

SYSNAME = 128           # SQL Server identifiers (sysname)
SUBJECT_MAX = 64        # certificate SUBJECT on SQL Server on Linux
#: A server-side directory: no '..' segment, so the path the plan shows is the directory the server writes to.
SERVER_PATH = dict(pattern=r"^(?!(?:.*[\\/])?\.\.(?:[\\/]|$))",
                   pattern_message="{value} has a '..' segment",
                   pattern_hint="write the directory itself, without '..' (e.g. 'D:\\Backup\\certs')")


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The key must be written.
REQUIRED: Any = _Marker("REQUIRED")
#: The key may be left out; what that means depends on other values (``Key.doc_default`` says what).
OPTIONAL: Any = _Marker("OPTIONAL")
#: A section left out (or empty) has the defaults of its keys.
DEFAULTS: Any = _Marker("DEFAULTS")


@dataclass(frozen=True)
class Key:
    """The declaration of one key: how it is written, checked, defaulted and documented."""
    kind: str                       # text | integer | boolean | choice | secret | template | section | items | overrides
    help: str
    default: Any = REQUIRED         # REQUIRED, OPTIONAL, DEFAULTS (sections), or the value used when absent
    example: Any = None             # what the messages suggest writing
    nullable: bool = False          # null is accepted (and means the same as absent)
    strip: bool = False             # text: surrounding spaces are trimmed rather than refused
    choices: tuple[str, ...] = ()
    lo: int | None = None
    hi: int | None = None
    unit: str = ""                  # integer: shown in the docs (``integer seconds 1–300``)
    placeholder: str = ""           # template: the one placeholder allowed
    max_length: int | None = None
    length_hint: str = ""
    pattern: str | None = None      # a regular expression valid in Python and in JSON Schema (ECMA 262)
    pattern_message: str = ""       # "{value} is not ..."
    pattern_hint: str = ""
    section: type | None = None     # section | items | overrides: the dataclass of the keys inside
    what: str = ""                  # items: what one item is, for "expected ..."
    doc_type: str = ""              # the docs' Type column, when the kind does not say it well
    doc_default: str = ""           # the docs' Default column, when the default is not a plain value


def _declare(key: Key) -> Any:
    """The dataclass field of a declared key: the key's default is the field's default."""
    meta = {"key": key}
    if key.default is DEFAULTS:
        return field(default_factory=key.section, metadata=meta)
    if key.default is REQUIRED or key.default is OPTIONAL:
        return field(metadata=meta)
    return field(default=key.default, metadata=meta)


def text(help: str, *, default: Any = REQUIRED, example: str, nullable: bool = False, strip: bool = False,
         max_length: int | None = None, length_hint: str = "", pattern: str | None = None,
         pattern_message: str = "", pattern_hint: str = "", doc_type: str = "", doc_default: str = "") -> Any:
    return _declare(Key("text", help, default, example, nullable=nullable, strip=strip, max_length=max_length,
                        length_hint=length_hint, pattern=pattern, pattern_message=pattern_message,
                        pattern_hint=pattern_hint, doc_type=doc_type, doc_default=doc_default))


def integer(help: str, lo: int, hi: int, *, default: Any, example: int, nullable: bool = False,
            unit: str = "", doc_default: str = "") -> Any:
    return _declare(Key("integer", help, default, example, nullable=nullable, lo=lo, hi=hi, unit=unit,
                        doc_default=doc_default))


def boolean(help: str, *, default: bool) -> Any:
    return _declare(Key("boolean", help, default))


def choice(help: str, choices: tuple[str, ...], *, default: Any, example: str | None = None,
           doc_default: str = "") -> Any:
    return _declare(Key("choice", help, default, example, choices=choices, doc_default=doc_default))


def secret(help: str, *, example: str, default: Any = None, doc_default: str = "") -> Any:
    """A secret reference (mirrorkit.config.references); absent or null is None."""
    return _declare(Key("secret", help, default, example, nullable=True, doc_default=doc_default))


def template(help: str, placeholder: str, *, default: str, doc_type: str = "") -> Any:
    example = "'" + default.replace("'", "''") + "'"
    return _declare(Key("template", help, default, example, placeholder=placeholder, doc_type=doc_type))


def section(help: str, cls: type, *, default: Any = DEFAULTS) -> Any:
    """A mapping of the keys of ``cls``; absent or empty means the defaults of its keys (or ``default``)."""
    return _declare(Key("section", help, default, section=cls, nullable=True))


def items(help: str, cls: type, *, what: str, doc_type: str) -> Any:
    """A required list of mappings of the keys of ``cls``."""
    return _declare(Key("items", help, REQUIRED, section=cls, what=what, doc_type=doc_type))


def overrides(help: str, cls: type) -> Any:
    """A mapping of any keys of ``cls`` that override the section of the same name."""
    return _declare(Key("overrides", help, OPTIONAL, section=cls, nullable=True, doc_type="mapping"))


# ---------------------------------------------------------------------------------------------
# The sections
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSettings:
    """How the kit connects to an instance (TDS through ODBC)."""
    driver: str = text("ODBC driver name (`FreeTDS` for the lab)",
                       default="ODBC Driver 18 for SQL Server", example="'ODBC Driver 18 for SQL Server'",
                       # a brace or ; would end the DRIVER={…} value of the connection string early
                       pattern=r"^[^{};]*$", pattern_message="{value} contains a brace or ';'",
                       pattern_hint="write the driver name as odbcinst.ini lists it, e.g. driver: FreeTDS")
    authentication: str = choice("`windows` = Trusted_Connection (Kerberos on Linux)", ("sql", "windows"),
                                 default="sql")
    user: str | None = text("login the kit uses", default=None, nullable=True, example="mirrorkit_admin",
                            doc_default="required for `sql`")
    password: SecretRef | None = secret("the password of `user`", example="env:MIRRORKIT_SQL_PASSWORD",
                                        doc_default="required for `sql`")
    encrypt: str = choice("ODBC Driver 18 `Encrypt`; FreeTDS maps yes/strict to `Encryption=require`, optional "
                          "to `request`, no to `off`", ("yes", "no", "strict", "optional"), default="yes")
    trust_server_certificate: bool = boolean("ODBC Driver 18 `TrustServerCertificate`", default=False)
    host_name_in_certificate: str | None = text("ODBC Driver 18 `HostNameInCertificate`", default=None,
                                                nullable=True, example="sql01.example.com")
    login_timeout: int = integer("seconds to wait for a login", 1, 300, default=15, example=15, unit="seconds")
    tds_version: str = text("TDS protocol version, `N.N` or `auto` (FreeTDS only)", default="7.4",
                            example="'7.4'", pattern=r"^(auto|[0-9]+\.[0-9]+)$",
                            pattern_message="{value} is not a TDS version",
                            pattern_hint="write e.g. tds_version: '7.4'")

    @property
    def is_freetds(self) -> bool:
        return "freetds" in self.driver.lower()


@dataclass(frozen=True)
class EndpointSettings:
    name: str = text("DATABASE_MIRRORING endpoint name (an existing endpoint of another name is reused and "
                     "reported)", default="Mirroring", example="Mirroring", max_length=SYSNAME,
                     length_hint="shorten it")
    port: int = integer("LISTENER_PORT", 1024, 32767, default=5022, example=5022)
    listener_ip: str = text("LISTENER_IP; other than `all` it must equal every instance's IP "
                            "`endpoint_address`", default="all", example="all", strip=True,
                            doc_type="`all` or an IPv4 address")
    encryption: str = choice("ENCRYPTION", ("required", "supported", "disabled"), default="required")
    algorithm: str | None = choice("ALGORITHM (not allowed with `disabled`, which has none)",
                                   ("aes", "rc4", "aes rc4", "rc4 aes"), default="aes")
    partner_role: str = choice("ROLE for mirroring partners (replicas always get ALL, the witness WITNESS)",
                               ("partner", "all"), default="all")
    allow_alter: bool = boolean("alter an existing endpoint that differs from these settings (otherwise report "
                                "the drift and the ALTER it would take)", default=False)


@dataclass(frozen=True)
class PrivateKeyBackup:
    directory: str = text("BACKUP CERTIFICATE … WITH PRIVATE KEY to this server-side directory",
                          default=OPTIONAL, nullable=True, example="'D:\\Backup\\certs'",
                          doc_type="server path", doc_default="none (no backup)", **SERVER_PATH)
    password: SecretRef = secret("ENCRYPTION BY PASSWORD of the PVK file", example="env:MIRRORKIT_PVK_PASSWORD",
                                 default=OPTIONAL, doc_default="required with `directory`")


@dataclass(frozen=True)
class CertificateSettings:
    name: str = template("certificate name; `{instance}` is the instance name", "instance",
                         default="{instance}_dbm_cert")
    subject: str = template("SUBJECT", "instance", default="{instance} DATABASE_MIRRORING endpoint",
                            doc_type=f"template, ≤ {SUBJECT_MAX} characters after expansion")
    lifetime_days: int = integer("EXPIRY_DATE = START_DATE + lifetime", 1, 36500, default=1095, example=1095)
    backdate_hours: int = integer("START_DATE = now (UTC) − backdate, so peers in any time zone see it valid",
                                  0, 720, default=24, example=24)
    transfer: str = choice("how the public key travels: `binary` = CERTENCODED → artifact → CREATE CERTIFICATE "
                           "FROM BINARY; `file` = BACKUP CERTIFICATE TO FILE on the peer, CREATE CERTIFICATE FROM "
                           "FILE on the target (needs `file_share`)", ("binary", "file"), default="binary")
    file_share: str | None = text("a directory every instance reaches under the same path (`\\\\fileserver\\certs`), "
                                  "for `transfer: file`", default=None, nullable=True,
                                  example="'\\\\fileserver\\certs'", doc_type="server path", **SERVER_PATH)
    private_key_backup: PrivateKeyBackup | None = section("back up each certificate with its private key",
                                                          PrivateKeyBackup, default=None)


@dataclass(frozen=True)
class LoginSettings:
    login: str = template("login created on the target for each peer; `{peer}` is the peer's instance name",
                          "peer", default="{peer}_dbm_login")
    user: str = template("user in master for that login (owns the peer's certificate)", "peer",
                         default="{peer}_dbm_user")


@dataclass(frozen=True)
class SecretSettings:
    master_key_password: SecretRef | None = secret("CREATE MASTER KEY password",
                                                   example="env:MIRRORKIT_MASTER_KEY_PASSWORD",
                                                   doc_default="required when a master key must be created")


@dataclass(frozen=True)
class VerifySettings:
    expiry_warning_days: int = integer("WARN when an endpoint certificate expires within this many days",
                                       1, 3650, default=30, example=30)
    errorlog_hours: int = integer("how far back verify reads the error logs", 1, 8760, default=24, example=24)


@dataclass(frozen=True)
class Instance:
    name: str = text("the instance name as `@@SERVERNAME` reports it; unique (case-insensitive); any characters "
                     "— the kit quotes every identifier", example="SQL01  (as @@SERVERNAME reports it)",
                     max_length=SYSNAME, length_hint="write the name @@SERVERNAME reports")
    server: str = text("where the kit connects (TDS); unique", example="'sql01.example.com,1433'",
                       doc_type="string `HOST,PORT` or `HOST\\INSTANCE`")   # as written
    host: str
    port: int | None                            # None for HOST\INSTANCE (SQL Browser resolves it)
    role: str = choice("partner or witness (database mirroring), replica (availability group)",
                       ("partner", "witness", "replica"), default=REQUIRED, example="partner  (or witness, replica)")
    endpoint_address: str = text("host peers use in `TCP://host:port`", default=OPTIONAL, nullable=True,
                                 example="sql01.example.com", doc_default="host of `server`")
    endpoint_port: int = integer("per-instance endpoint port", 1024, 32767, default=OPTIONAL, nullable=True,
                                 example=5022, doc_default="`endpoint.port`")
    # merged: defaults < connection < instances[].connection
    connection: ConnectionSettings = overrides("per-instance overrides of any `connection` key", ConnectionSettings)
    instance_name: str | None = None            # the INSTANCE of HOST\INSTANCE


@dataclass(frozen=True)
class Environment:
    environment: str = text("environment name; records go to `runs/<environment>/…`", example="prod",
                            pattern=r"^(?!\.+$)[A-Za-z0-9_.-]+$",
                            pattern_message="{value} is not a valid environment name",
                            pattern_hint="use letters, digits, _ . and - only (not just dots), "
                                         "e.g. environment: prod-east",
                            doc_type="string, `[A-Za-z0-9_.-]+`, not only dots")
    topology: str = choice("mirroring: exactly two `partner`s and at most one `witness`; availability group: "
                           "2–9 `replica`s (full mesh); the two never mix", ("mirroring", "availability_group"),
                           default=OPTIONAL, doc_default="from the roles")
    instances: tuple[Instance, ...] = items("the SQL Server instances, in the order the runbook treats them",
                                            Instance, what="an instance (a mapping with name, server, role)",
                                            doc_type="list of instances")
    endpoint: EndpointSettings = section("the DATABASE_MIRRORING endpoint of every instance", EndpointSettings)
    certificate: CertificateSettings = section("the endpoint certificates", CertificateSettings)
    logins: LoginSettings = section("the login and user each peer's certificate maps to", LoginSettings)
    # the file's connection section with defaults
    connection: ConnectionSettings = section("how the kit connects to every instance", ConnectionSettings)
    secrets: SecretSettings = section("secret references only, never the secrets", SecretSettings)
    verify: VerifySettings = section("what verify checks", VerifySettings)
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
        return expand(self.certificate.name, "instance", self.instance(name).name)

    def certificate_subject(self, name: str | Instance) -> str:
        return expand(self.certificate.subject, "instance", self.instance(name).name)

    def login_name(self, peer: str | Instance) -> str:
        return expand(self.logins.login, "peer", principal_part(self.instance(peer).name))

    def user_name(self, peer: str | Instance) -> str:
        return expand(self.logins.user, "peer", principal_part(self.instance(peer).name))

    # -- records ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The validated values as plain data (secret references as written), without source."""
        return _plain({k: getattr(self, k) for k in self.__dataclass_fields__ if k != "source"})

    def secret_references(self, *, connections_only: bool = False) -> list[tuple[SecretRef, str]]:
        """Every secret reference the environment uses, with the label messages name it by: each
        instance's SQL-authentication password, then (unless connections_only) the master-key and
        private-key-backup passwords."""
        refs = [(i.connection.password, connection_secret_label(i)) for i in self.instances
                if i.connection.authentication == "sql" and i.connection.password is not None]
        if not connections_only:
            if self.secrets.master_key_password is not None:
                refs.append((self.secrets.master_key_password, "secrets.master_key_password"))
            if self.certificate.private_key_backup is not None:
                refs.append((self.certificate.private_key_backup.password, "certificate.private_key_backup.password"))
        return refs

    def digest(self) -> str:
        """sha256 of a canonical JSON of the validated values (defaults applied)."""
        text_ = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def connection_secret_label(instance: "Instance") -> str:
    return f"{instance.name}: connection.password"


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


def principal_part(name: str) -> str:
    """A name as it goes into a login or user name."""
    # SQL Server login names cannot contain a backslash; a named instance's HOST\INSTANCE
    # becomes HOST_INSTANCE in login and user names.
    return name.replace("\\", "_")


def expand(template_: str, placeholder: str, value: str) -> str:
    """A name template with its one placeholder filled in ({{ and }} are literal braces)."""
    out = []
    for literal, fname, _spec, _conv in string.Formatter().parse(template_):
        out.append(literal)
        if fname is not None:
            out.append(value)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Reading the declarations
# ---------------------------------------------------------------------------------------------


def keys_of(cls: type) -> dict[str, Key]:
    """The declared keys of a section, in declaration order."""
    return {f.name: f.metadata["key"] for f in fields(cls) if "key" in f.metadata}


def walk(cls: type = Environment, prefix: str = "") -> Iterator[tuple[str, Key]]:
    """Every key as (documented path, declaration): ``instances[].name``, ``endpoint.port`` ...

    A section is not a key of its own (its keys are); a list of sections and a mapping of
    overrides are.
    """
    for name, key in keys_of(cls).items():
        path = f"{prefix}{name}"
        if key.kind != "section":
            yield path, key
        if key.kind == "section":
            yield from walk(key.section, f"{path}.")
        elif key.kind == "items":
            yield from walk(key.section, f"{path}[].")


def home_sections() -> dict[str, str]:
    """Where a key name belongs, for "unknown key" hints given at the wrong level.

    A name used in several sections points where people most often mean it: an instance's
    key first, then a connection key, then the first section that has it.
    """
    sections: list[tuple[str, type]] = []

    def collect(cls: type, prefix: str) -> None:
        for name, key in keys_of(cls).items():
            if key.kind == "section":
                sections.append((prefix + name, key.section))
                collect(key.section, prefix + name + ".")
            elif key.kind == "items":
                sections.append((prefix + name + "[]", key.section))
    collect(Environment, "")
    preferred = sorted(sections, key=lambda s: (not s[0].endswith("[]"), s[0] != "connection"))
    home: dict[str, str] = {}
    for where, cls in preferred:
        for name in keys_of(cls):
            home.setdefault(name, where)
    return home


#: Top-level keys of a parameter file; each is a notebook parameter.
NOTEBOOK_PARAMETERS: tuple[str, ...] = tuple(keys_of(Environment))
#: Every key a parameter file may hold, as documented (``instances[].name``, ``endpoint.port`` ...).
SCHEMA_KEYS: tuple[str, ...] = tuple(path for path, _key in walk())
