"""Parsed statements (the lab's T-SQL subset). Expressions stay as source text
and are compiled by select.py when executed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Expr:
    text: str
    line: int


@dataclass
class Statement:
    line: int = field(default=1, kw_only=True)


@dataclass
class Select(Statement):
    text: str


@dataclass
class CreateMasterKey(Statement):
    password: Optional[str]


@dataclass
class OpenMasterKey(Statement):
    password: str


@dataclass
class CloseMasterKey(Statement):
    pass


@dataclass
class AlterMasterKey(Statement):
    action: str                    # ADD | DROP | REGENERATE
    by_service_master_key: bool = False
    password: Optional[str] = None
    force: bool = False


@dataclass
class DropMasterKey(Statement):
    pass


@dataclass
class PrivateKeyOptions:
    file: Optional[str] = None
    binary: Optional[bytes] = None
    decryption_password: Optional[str] = None
    encryption_password: Optional[str] = None


@dataclass
class CreateCertificate(Statement):
    name: str
    owner: Optional[str] = None
    source: str = "generate"       # generate | file | binary
    subject: Optional[str] = None
    start_date: Optional[str] = None
    expiry_date: Optional[str] = None
    encryption_password: Optional[str] = None
    file: Optional[str] = None
    binary: Optional[bytes] = None
    private_key: Optional[PrivateKeyOptions] = None
    active_for_begin_dialog: bool = True


@dataclass
class DropCertificate(Statement):
    name: str


@dataclass
class BackupCertificate(Statement):
    name: str
    file: str
    private_key: Optional[PrivateKeyOptions] = None


@dataclass
class MirroringOptions:
    """Only the options the statement named; None = not given."""
    connection_auth: Optional[int] = None
    certificate: Optional[str] = None
    encryption: Optional[str] = None        # DISABLED | SUPPORTED | REQUIRED
    algorithm: Optional[str] = None         # AES | RC4 | AES RC4 | RC4 AES
    role: Optional[str] = None              # WITNESS | PARTNER | ALL


@dataclass
class EndpointSpec(Statement):
    name: str
    owner: Optional[str] = None
    state: Optional[str] = None
    port: Optional[int] = None
    listener_ip: Optional[str] = None       # "ALL" or an address
    transport: Optional[str] = None         # TCP
    payload: Optional[str] = None           # DATABASE_MIRRORING
    mirroring: Optional[MirroringOptions] = None


@dataclass
class CreateEndpoint(EndpointSpec):
    pass


@dataclass
class AlterEndpoint(EndpointSpec):
    pass


@dataclass
class DropEndpoint(Statement):
    name: str


@dataclass
class CreateLogin(Statement):
    name: str
    source: str = "password"                # password | windows | certificate
    password: Optional[str] = None
    hashed: bool = False
    must_change: bool = False
    check_policy: Optional[bool] = None
    check_expiration: Optional[bool] = None
    default_database: Optional[str] = None
    default_language: Optional[str] = None
    sid: Optional[bytes] = None
    certificate: Optional[str] = None


@dataclass
class AlterLogin(Statement):
    name: str
    enable: Optional[bool] = None
    password: Optional[str] = None
    old_password: Optional[str] = None
    check_policy: Optional[bool] = None
    check_expiration: Optional[bool] = None
    default_database: Optional[str] = None
    new_name: Optional[str] = None


@dataclass
class DropLogin(Statement):
    name: str


@dataclass
class CreateUser(Statement):
    name: str
    login: Optional[str] = None
    without_login: bool = False
    certificate: Optional[str] = None
    default_schema: Optional[str] = None


@dataclass
class DropUser(Statement):
    name: str


@dataclass
class PermissionStatement(Statement):
    action: str                              # GRANT | REVOKE | DENY
    permissions: list[str]
    securable_class: Optional[str]           # ENDPOINT | None (server scope)
    securable: Optional[str]
    principals: list[str]
    with_grant_option: bool = False
    grant_option_for: bool = False
    cascade: bool = False


@dataclass
class AlterAuthorization(Statement):
    securable_class: str                     # CERTIFICATE | ENDPOINT
    securable: str
    principal: str


@dataclass
class AlterServerRole(Statement):
    role: str
    add: bool
    member: str


@dataclass
class Use(Statement):
    database: str


@dataclass
class BeginTran(Statement):
    pass


@dataclass
class CommitTran(Statement):
    pass


@dataclass
class RollbackTran(Statement):
    pass


@dataclass
class Block(Statement):
    statements: list[Statement]


@dataclass
class If(Statement):
    condition: Expr
    then: Statement
    otherwise: Optional[Statement] = None


@dataclass
class Print(Statement):
    expr: Expr


@dataclass
class Declare(Statement):
    variables: list[tuple[str, str, Optional[Expr]]]


@dataclass
class SetVariable(Statement):
    name: str
    operator: str                            # = += -= …
    expr: Expr


@dataclass
class SetOption(Statement):
    option: str
    value: str


@dataclass
class ExecArg:
    name: Optional[str]
    expr: Expr
    output: bool = False


@dataclass
class Exec(Statement):
    procedure: Optional[str]
    args: list[ExecArg]
    dynamic: Optional[Expr] = None           # EXEC (@sql)
    return_var: Optional[str] = None         # EXEC @rc = proc


@dataclass
class Return(Statement):
    pass


@dataclass
class RaiseError(Statement):
    message: Expr
    severity: Expr
    state: Expr
    args: list[Expr]
    number: Optional[Expr] = None            # THROW number, message, state


@dataclass
class AlterDatabaseMirroring(Statement):
    """ALTER DATABASE <database> SET { PARTNER <option> | WITNESS <option> } (one option per statement).

    option/value: PARTNER = 'TCP://…' → ("PARTNER", url); PARTNER FAILOVER | FORCE_SERVICE_ALLOW_DATA_LOSS |
    OFF | RESUME | SUSPEND → (that word, None); PARTNER SAFETY FULL|OFF → ("SAFETY", "FULL"|"OFF");
    PARTNER TIMEOUT n → ("TIMEOUT", n); PARTNER REDO_QUEUE n MB | UNLIMITED → ("REDO_QUEUE", n|None);
    WITNESS = 'TCP://…' → ("WITNESS", url); WITNESS OFF → ("WITNESS OFF", None).
    """
    database: str
    option: str
    value: object = None


@dataclass
class FileSpec:
    """One file of CREATE DATABASE … ON (…) / LOG ON (…); sizes are accepted and kept as written."""
    name: Optional[str] = None
    filename: Optional[str] = None
    options: dict = field(default_factory=dict)


@dataclass
class CreateDatabase(Statement):
    name: str
    files: list[FileSpec] = field(default_factory=list)
    log_files: list[FileSpec] = field(default_factory=list)


@dataclass
class DropDatabase(Statement):
    names: list[str]
    if_exists: bool = False


@dataclass
class AlterDatabaseSet(Statement):
    """ALTER DATABASE <database> SET <option> [<value>]: RECOVERY FULL|SIMPLE|BULK_LOGGED,
    SINGLE_USER|RESTRICTED_USER|MULTI_USER, READ_ONLY|READ_WRITE, ONLINE|OFFLINE (value None)."""
    database: str
    option: str
    value: Optional[str] = None
    rollback: Optional[str] = None          # WITH ROLLBACK IMMEDIATE | AFTER n | NO_WAIT


@dataclass
class ColumnSpec:
    name: str
    sqltype: str
    nullable: Optional[bool] = None
    identity: Optional[tuple[int, int]] = None
    default: Optional[Expr] = None


@dataclass
class TableConstraint:
    name: Optional[str]
    type: str                               # PK | UQ
    columns: list[str]


@dataclass
class ObjectName:
    name: str
    schema: Optional[str] = None
    database: Optional[str] = None

    def __str__(self) -> str:
        return ".".join(p for p in (self.database, self.schema, self.name) if p)


@dataclass
class CreateTable(Statement):
    table: ObjectName
    columns: list[ColumnSpec]
    constraints: list[TableConstraint] = field(default_factory=list)


@dataclass
class DropTable(Statement):
    tables: list[ObjectName]
    if_exists: bool = False


@dataclass
class Dml(Statement):
    """INSERT, UPDATE or DELETE, kept as source text and compiled by select.py (like SELECT)."""
    kind: str                               # INSERT | UPDATE | DELETE
    text: str


@dataclass
class BackupDatabase(Statement):
    """BACKUP DATABASE | LOG <database> TO DISK = '…' [, DISK = '…'] [WITH …].

    kind: DATABASE | LOG. options: upper-case option name → value (True for a bare flag,
    str/int for NAME = '…', STATS = n …); FORMAT/INIT are keys when given, NOFORMAT/NOINIT too."""
    kind: str
    database: str
    disks: list[str]
    options: dict = field(default_factory=dict)


@dataclass
class RestoreDatabase(Statement):
    """RESTORE DATABASE | LOG <database> [FROM DISK = '…' [, …]] [WITH …];
    RESTORE HEADERONLY | FILELISTONLY FROM DISK = '…' [WITH FILE = n] (database None).

    moves: (logical name, physical name) from WITH MOVE, in order."""
    kind: str                               # DATABASE | LOG | HEADERONLY | FILELISTONLY
    database: Optional[str]
    disks: list[str]
    options: dict = field(default_factory=dict)
    moves: list[tuple[str, str]] = field(default_factory=list)
