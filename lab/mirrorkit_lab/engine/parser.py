"""Recursive-descent parser for the lab's T-SQL subset.

Statements need no separator (SQL Server accepts batches split by nothing but
whitespace), so the parser knows where each statement starts; SELECT and
expressions are kept as source text and handed to select.py.
"""
from __future__ import annotations

from typing import Callable, Optional

from . import statements as st
from .errors import SqlError, not_supported, syntax_error
from .lexer import BINARY, EOF, IDENT, NUMBER, QIDENT, STRING, VAR, Token, tokenize

# Keywords that begin a statement; at parenthesis depth 0 they end the previous one.
STATEMENT_START = frozenset("""
    SELECT CREATE ALTER DROP GRANT REVOKE DENY BACKUP RESTORE USE BEGIN COMMIT ROLLBACK SAVE
    IF ELSE END PRINT DECLARE SET EXEC EXECUTE OPEN CLOSE RETURN WHILE INSERT UPDATE DELETE
    MERGE TRUNCATE RAISERROR THROW GOTO BREAK CONTINUE WAITFOR DBCC KILL CHECKPOINT RECONFIGURE
    SHUTDOWN GO
""".split())

RESERVED = frozenset("""
    ADD ALL ALTER AND ANY AS ASC AUTHORIZATION BACKUP BEGIN BETWEEN BREAK BROWSE BULK BY CASCADE
    CASE CHECK CHECKPOINT CLOSE CLUSTERED COALESCE COLLATE COLUMN COMMIT COMPUTE CONSTRAINT CONTAINS
    CONTINUE CONVERT CREATE CROSS CURRENT CURSOR DATABASE DBCC DEALLOCATE DECLARE DEFAULT DELETE
    DENY DESC DISTINCT DISTRIBUTED DOUBLE DROP ELSE END ERRLVL ESCAPE EXCEPT EXEC EXECUTE EXISTS
    EXIT EXTERNAL FETCH FILE FOR FOREIGN FROM FULL FUNCTION GOTO GRANT GROUP HAVING IDENTITY IF IN
    INDEX INNER INSERT INTERSECT INTO IS JOIN KEY KILL LEFT LIKE LINENO MERGE NOT NULL NULLIF OF
    OFF ON OPEN OPTION OR ORDER OUTER OVER PERCENT PLAN PRIMARY PRINT PROC PROCEDURE PUBLIC
    RAISERROR READ RECONFIGURE REFERENCES REPLICATION RESTORE RETURN REVERT REVOKE RIGHT ROLLBACK
    ROWCOUNT RULE SAVE SCHEMA SELECT SET SHUTDOWN SOME TABLE THEN TO TOP TRAN TRANSACTION TRIGGER
    TRUNCATE UNION UNIQUE UPDATE USE USER VALUES VIEW WAITFOR WHEN WHERE WHILE WITH
""".split())

_UNSUPPORTED_STARTS = {
    "MERGE": "MERGE",
    "TRUNCATE": "TRUNCATE TABLE", "WHILE": "WHILE", "GOTO": "GOTO", "WAITFOR": "WAITFOR",
    "DBCC": "DBCC", "KILL": "KILL", "SAVE": "SAVE TRANSACTION",
    "CHECKPOINT": "CHECKPOINT", "RECONFIGURE": "RECONFIGURE", "SHUTDOWN": "SHUTDOWN",
    "BREAK": "BREAK", "CONTINUE": "CONTINUE",
}

_COMMON_MEDIA_OPTIONS = {
    "CHECKSUM": "flag", "NO_CHECKSUM": "flag", "STATS": "stats", "CONTINUE_AFTER_ERROR": "flag",
    "STOP_ON_ERROR": "flag", "REWIND": "flag", "NOREWIND": "flag", "UNLOAD": "flag", "NOUNLOAD": "flag",
    "BLOCKSIZE": "int", "BUFFERCOUNT": "int", "MAXTRANSFERSIZE": "int", "MEDIANAME": "str",
    "PASSWORD": "unsupported", "MEDIAPASSWORD": "unsupported",
}
_BACKUP_OPTIONS = {
    **_COMMON_MEDIA_OPTIONS, "FORMAT": "flag", "NOFORMAT": "flag", "INIT": "flag", "NOINIT": "flag",
    "SKIP": "flag", "NOSKIP": "flag", "COPY_ONLY": "flag", "COMPRESSION": "flag", "NO_COMPRESSION": "flag",
    "NAME": "str", "DESCRIPTION": "str", "MEDIADESCRIPTION": "str", "NO_TRUNCATE": "flag",
    "NORECOVERY": "flag", "EXPIREDATE": "str", "RETAINDAYS": "int",
    "DIFFERENTIAL": "unsupported", "STANDBY": "unsupported", "ENCRYPTION": "unsupported",
    "FILE_SNAPSHOT": "unsupported", "METADATA_ONLY": "unsupported",
}
_RESTORE_OPTIONS = {
    **_COMMON_MEDIA_OPTIONS, "FILE": "int", "RECOVERY": "flag", "NORECOVERY": "flag", "MOVE": "move",
    "REPLACE": "flag", "RESTART": "flag", "RESTRICTED_USER": "flag", "KEEP_REPLICATION": "flag",
    "KEEP_CDC": "flag", "ENABLE_BROKER": "flag", "NEW_BROKER": "flag", "ERROR_BROKER_CONVERSATIONS": "flag",
    "LOADHISTORY": "flag", "STANDBY": "unsupported", "PARTIAL": "unsupported", "STOPAT": "unsupported",
    "STOPATMARK": "unsupported", "STOPBEFOREMARK": "unsupported", "FILESTREAM": "unsupported",
    "CREDENTIAL": "unsupported",
}

AUTH_CODES = {
    ("NTLM",): 1, ("KERBEROS",): 2, ("NEGOTIATE",): 3, ("CERTIFICATE",): 4,
    ("NTLM", "CERTIFICATE"): 5, ("KERBEROS", "CERTIFICATE"): 6, ("NEGOTIATE", "CERTIFICATE"): 7,
    ("CERTIFICATE", "NTLM"): 8, ("CERTIFICATE", "KERBEROS"): 9, ("CERTIFICATE", "NEGOTIATE"): 10,
}


def parse_batch(sql: str) -> list[st.Statement]:
    return Parser(sql).parse_all()


class Parser:
    def __init__(self, sql: str):
        self.sql = sql
        self.toks = tokenize(sql)
        self.pos = 0

    # -- token helpers -------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        t = self.toks[self.pos]
        if t.kind != EOF:
            self.pos += 1
        return t

    def error(self, t: Optional[Token] = None) -> SqlError:
        t = t or self.tok
        if t.kind == EOF:
            prev = self.toks[self.pos - 1] if self.pos else t
            err = syntax_error(self.sql[prev.start:prev.end] or "")
            err.line = prev.line
            return err
        near = self.sql[t.start:t.end]
        err = syntax_error(near, keyword=t.kind == IDENT and t.value.upper() in RESERVED)
        err.line = t.line
        return err

    def at_kw(self, *words: str) -> bool:
        return self.tok.is_kw(*words)

    def accept_kw(self, *words: str) -> Optional[str]:
        if self.tok.is_kw(*words):
            return self.advance().value.upper()
        return None

    def expect_kw(self, *words: str) -> str:
        if not self.tok.is_kw(*words):
            raise self.error()
        return self.advance().value.upper()

    def accept_op(self, *ops: str) -> Optional[str]:
        if self.tok.is_op(*ops):
            return self.advance().value
        return None

    def expect_op(self, *ops: str) -> str:
        if not self.tok.is_op(*ops):
            raise self.error()
        return self.advance().value

    def name(self) -> str:
        t = self.tok
        if t.kind == QIDENT or (t.kind == IDENT and t.value.upper() not in RESERVED):
            self.advance()
            if len(t.value) > 128:
                raise SqlError(103, "identifier", t.value[:128], 128, abort_batch=True)
            return t.value
        raise self.error()

    def string(self) -> str:
        t = self.tok
        if t.kind != STRING:
            raise self.error()
        self.advance()
        return t.value

    def binary(self) -> bytes:
        t = self.tok
        if t.kind != BINARY:
            raise self.error()
        self.advance()
        digits = t.value if len(t.value) % 2 == 0 else "0" + t.value
        return bytes.fromhex(digits)

    def integer(self) -> int:
        t = self.tok
        sign = 1
        if t.is_op("-", "+"):
            sign = -1 if t.value == "-" else 1
            self.advance()
            t = self.tok
        if t.kind != NUMBER or not t.value.isdigit():
            raise self.error()
        self.advance()
        return sign * int(t.value)

    def on_off(self) -> bool:
        return self.expect_kw("ON", "OFF") == "ON"

    def equals(self) -> None:
        self.expect_op("=")

    # -- statements --------------------------------------------------------------
    def parse_all(self) -> list[st.Statement]:
        out: list[st.Statement] = []
        while True:
            while self.accept_op(";"):
                pass
            if self.tok.kind == EOF:
                return out
            out.append(self.statement(first=not out))

    def statement(self, first: bool = False) -> st.Statement:
        t = self.tok
        line = t.line
        if t.is_op("("):
            stmt = self.select_statement()
        elif t.kind in (IDENT, QIDENT):
            kw = t.value.upper() if t.kind == IDENT else ""
            handler = self._DISPATCH.get(kw)
            if handler is not None:
                stmt = handler(self)
            elif kw in _UNSUPPORTED_STARTS:
                raise not_supported(f"The {_UNSUPPORTED_STARTS[kw]} statement")
            elif first:
                # a batch may start with a procedure name and no EXEC
                stmt = self.exec_body()
            else:
                raise self.error()
        else:
            raise self.error()
        stmt.line = line
        self.accept_op(";")
        return stmt

    # SELECT / WITH ----------------------------------------------------------------
    def select_statement(self) -> st.Select:
        start = self.tok
        if self.at_kw("WITH"):
            self.advance()
        else:
            self.advance()  # SELECT or (
            if start.is_op("("):
                self.pos -= 1
        end = self.scan_to_statement_end(allow_select_continuation=True)
        return st.Select(self.sql[start.start:end], line=start.line)

    def scan_to_statement_end(self, allow_select_continuation: bool = True) -> int:
        """Advance past tokens of an expression or query; return the end offset."""
        depth = case_depth = 0
        last_end = self.tok.start
        prev: Optional[Token] = None
        while True:
            t = self.tok
            if t.kind == EOF:
                break
            if t.is_op("("):
                depth += 1
            elif t.is_op(")"):
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0:
                if t.is_op(";"):
                    break
                if t.kind == IDENT:
                    u = t.value.upper()
                    if u == "CASE":
                        case_depth += 1
                    elif u == "END" and case_depth:
                        case_depth -= 1
                    elif u == "ELSE" and case_depth:
                        pass
                    elif u == "SELECT" and allow_select_continuation and prev is not None and (
                            prev.is_kw("UNION", "ALL", "EXCEPT", "INTERSECT")):
                        pass
                    elif u in STATEMENT_START and prev is not None:
                        break
            prev = t
            last_end = t.end
            self.advance()
        return last_end

    def expression(self) -> st.Expr:
        start = self.tok
        if start.kind == EOF or start.is_op(";"):
            raise self.error()
        end = self.scan_to_statement_end_expr()
        return st.Expr(self.sql[start.start:end], start.line)

    def scan_to_statement_end_expr(self) -> int:
        # like scan_to_statement_end, but the first token may itself be a keyword
        # such as SELECT inside a parenthesised subquery, and a bare SELECT ends it.
        depth = case_depth = 0
        last_end = self.tok.start
        first = True
        while True:
            t = self.tok
            if t.kind == EOF:
                break
            if t.is_op("("):
                depth += 1
            elif t.is_op(")"):
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0:
                if t.is_op(";", ","):
                    break
                if t.kind == IDENT:
                    u = t.value.upper()
                    if u == "CASE":
                        case_depth += 1
                    elif u == "END" and case_depth:
                        case_depth -= 1
                    elif u == "ELSE" and case_depth:
                        pass
                    elif u in STATEMENT_START and not first:
                        break
                    elif u in ("OUTPUT", "OUT") and not first:
                        break
            first = False
            last_end = t.end
            self.advance()
        return last_end

    # CREATE / ALTER / DROP ------------------------------------------------------------
    def create(self) -> st.Statement:
        self.expect_kw("CREATE")
        if self.accept_kw("MASTER"):
            self.expect_kw("KEY")
            password = None
            if self.accept_kw("ENCRYPTION"):
                self.expect_kw("BY")
                self.expect_kw("PASSWORD")
                self.equals()
                password = self.string()
            return st.CreateMasterKey(password)
        if self.accept_kw("CERTIFICATE"):
            return self.create_certificate()
        if self.accept_kw("ENDPOINT"):
            return self.endpoint(st.CreateEndpoint)
        if self.accept_kw("LOGIN"):
            return self.create_login()
        if self.accept_kw("USER"):
            return self.create_user()
        if self.accept_kw("DATABASE"):
            return self.create_database()
        if self.accept_kw("TABLE"):
            return self.create_table()
        raise not_supported(f"CREATE {self.sql[self.tok.start:self.tok.end].upper()}")

    def alter(self) -> st.Statement:
        self.expect_kw("ALTER")
        if self.accept_kw("MASTER"):
            self.expect_kw("KEY")
            return self.alter_master_key()
        if self.accept_kw("ENDPOINT"):
            return self.endpoint(st.AlterEndpoint)
        if self.accept_kw("LOGIN"):
            return self.alter_login()
        if self.accept_kw("AUTHORIZATION"):
            self.expect_kw("ON")
            klass = self.expect_kw("CERTIFICATE", "ENDPOINT")
            self.expect_op("::")
            securable = self.name()
            self.expect_kw("TO")
            principal = self.name()
            return st.AlterAuthorization(klass, securable, principal)
        if self.at_kw("SERVER") and self.peek().is_kw("ROLE"):
            self.advance()
            self.advance()
            role = self.name()
            add = self.expect_kw("ADD", "DROP") == "ADD"
            self.expect_kw("MEMBER")
            return st.AlterServerRole(role, add, self.name())
        if self.accept_kw("DATABASE"):
            return self.alter_database()
        raise not_supported(f"ALTER {self.sql[self.tok.start:self.tok.end].upper()}")

    def drop(self) -> st.Statement:
        self.expect_kw("DROP")
        if self.accept_kw("MASTER"):
            self.expect_kw("KEY")
            return st.DropMasterKey()
        if self.accept_kw("CERTIFICATE"):
            return st.DropCertificate(self.name())
        if self.accept_kw("ENDPOINT"):
            return st.DropEndpoint(self.name())
        if self.accept_kw("LOGIN"):
            return st.DropLogin(self.name())
        if self.accept_kw("USER"):
            return st.DropUser(self.name())
        if self.accept_kw("DATABASE"):
            if_exists = self.if_exists()
            names = [self.name()]
            while self.accept_op(","):
                names.append(self.name())
            return st.DropDatabase(names, if_exists)
        if self.accept_kw("TABLE"):
            if_exists = self.if_exists()
            tables = [self.object_name()]
            while self.accept_op(","):
                tables.append(self.object_name())
            return st.DropTable(tables, if_exists)
        raise not_supported(f"DROP {self.sql[self.tok.start:self.tok.end].upper()}")

    def alter_master_key(self) -> st.AlterMasterKey:
        force = bool(self.accept_kw("FORCE"))
        if self.accept_kw("REGENERATE"):
            self.expect_kw("WITH")
            self.expect_kw("ENCRYPTION")
            self.expect_kw("BY")
            self.expect_kw("PASSWORD")
            self.equals()
            return st.AlterMasterKey("REGENERATE", password=self.string(), force=force)
        if force:
            raise self.error()
        action = self.expect_kw("ADD", "DROP")
        self.expect_kw("ENCRYPTION")
        self.expect_kw("BY")
        if self.accept_kw("SERVICE"):
            self.expect_kw("MASTER")
            self.expect_kw("KEY")
            return st.AlterMasterKey(action, by_service_master_key=True)
        self.expect_kw("PASSWORD")
        self.equals()
        return st.AlterMasterKey(action, password=self.string())

    def create_certificate(self) -> st.CreateCertificate:
        stmt = st.CreateCertificate(self.name())
        if self.accept_kw("AUTHORIZATION"):
            stmt.owner = self.name()
        if self.accept_kw("FROM"):
            if self.accept_kw("EXECUTABLE"):
                self.expect_kw("FILE")
                self.pos -= 1
            if self.accept_kw("FILE"):
                self.equals()
                stmt.source, stmt.file = "file", self.string()
            elif self.accept_kw("BINARY"):
                self.equals()
                stmt.source, stmt.binary = "binary", self.binary()
            elif self.at_kw("ASSEMBLY"):
                raise not_supported("CREATE CERTIFICATE … FROM ASSEMBLY")
            else:
                raise self.error()
            if self.accept_kw("WITH"):
                if self.at_kw("FORMAT"):
                    raise not_supported("CREATE CERTIFICATE … WITH FORMAT = 'PFX'")
                self.expect_kw("PRIVATE")
                self.expect_kw("KEY")
                stmt.private_key = self.private_key_options(allow_binary=stmt.source == "binary")
        else:
            if self.accept_kw("ENCRYPTION"):
                self.expect_kw("BY")
                self.expect_kw("PASSWORD")
                self.equals()
                stmt.encryption_password = self.string()
            self.expect_kw("WITH")
            seen = set()
            while True:
                opt = self.expect_kw("SUBJECT", "START_DATE", "EXPIRY_DATE")
                if opt in seen:
                    raise self.error(self.toks[self.pos - 1])
                seen.add(opt)
                self.equals()
                value = self.string()
                if opt == "SUBJECT":
                    stmt.subject = value
                elif opt == "START_DATE":
                    stmt.start_date = value
                else:
                    stmt.expiry_date = value
                if not self.accept_op(","):
                    break
            if "SUBJECT" not in seen:
                raise self.error()
        if self.accept_kw("ACTIVE"):
            self.expect_kw("FOR")
            self.expect_kw("BEGIN_DIALOG")
            self.equals()
            stmt.active_for_begin_dialog = self.on_off()
        return stmt

    def private_key_options(self, allow_binary: bool) -> st.PrivateKeyOptions:
        opts = st.PrivateKeyOptions()
        self.expect_op("(")
        while True:
            if self.accept_kw("FILE"):
                self.equals()
                opts.file = self.string()
            elif allow_binary and self.accept_kw("BINARY"):
                self.equals()
                opts.binary = self.binary()
            elif self.at_kw("DECRYPTION", "ENCRYPTION"):
                which = self.advance().value.upper()
                self.expect_kw("BY")
                self.expect_kw("PASSWORD")
                self.equals()
                value = self.string()
                if which == "DECRYPTION":
                    opts.decryption_password = value
                else:
                    opts.encryption_password = value
            else:
                raise self.error()
            if not self.accept_op(","):
                break
        self.expect_op(")")
        if opts.file is None and opts.binary is None:
            raise self.error(self.toks[self.pos - 1])
        return opts

    def endpoint(self, cls):
        stmt = cls(self.name())
        creating = cls is st.CreateEndpoint
        if creating and self.accept_kw("AUTHORIZATION"):
            stmt.owner = self.name()
        if self.accept_kw("STATE"):
            self.equals()
            stmt.state = self.expect_kw("STARTED", "STOPPED", "DISABLED")
        if self.accept_kw("AS"):
            stmt.transport = self.expect_kw("TCP", "HTTP")
            if stmt.transport != "TCP":
                if not creating:
                    raise SqlError(7860)
                raise not_supported("Endpoints AS HTTP")
            self.tcp_options(stmt)
        elif creating:
            raise self.error()
        if self.accept_kw("FOR"):
            payload = self.expect_kw("DATABASE_MIRRORING", "DATA_MIRRORING", "TSQL",
                                     "SERVICE_BROKER", "SOAP")
            if payload not in ("DATABASE_MIRRORING", "DATA_MIRRORING"):
                if not creating:
                    raise SqlError(7860)
                raise not_supported(f"Endpoints FOR {payload}")
            stmt.payload = "DATABASE_MIRRORING"
            stmt.mirroring = self.mirroring_options(require_role=creating)
        elif creating:
            raise self.error()
        return stmt

    def tcp_options(self, stmt: st.EndpointSpec) -> None:
        self.expect_op("(")
        while True:
            if self.accept_kw("LISTENER_PORT"):
                self.equals()
                stmt.port = self.integer()
            elif self.accept_kw("LISTENER_IP"):
                self.equals()
                if self.accept_kw("ALL"):
                    stmt.listener_ip = "ALL"
                else:
                    open_tok = self.tok
                    self.expect_op("(")
                    if self.tok.kind == STRING:
                        stmt.listener_ip = self.string()
                    else:
                        start = self.tok.start
                        while not self.tok.is_op(")") and self.tok.kind != EOF:
                            self.advance()
                        stmt.listener_ip = self.sql[start:self.tok.start].strip()
                        if not stmt.listener_ip:
                            raise self.error(open_tok)
                    self.expect_op(")")
            else:
                raise self.error()
            self.accept_op(",")
            if self.accept_op(")"):
                break
        if stmt.port is None and isinstance(stmt, st.CreateEndpoint):
            raise self.error(self.toks[self.pos - 1])

    def mirroring_options(self, require_role: bool) -> st.MirroringOptions:
        opts = st.MirroringOptions()
        self.expect_op("(")
        while True:
            if self.accept_kw("AUTHENTICATION"):
                self.equals()
                self.authentication(opts)
            elif self.accept_kw("ENCRYPTION"):
                self.equals()
                opts.encryption = self.expect_kw("DISABLED", "SUPPORTED", "REQUIRED")
                if opts.encryption != "DISABLED" and self.accept_kw("ALGORITHM"):
                    first = self.expect_kw("AES", "RC4")
                    second = self.accept_kw("AES", "RC4")
                    if second == first:
                        raise self.error(self.toks[self.pos - 1])
                    opts.algorithm = first + (" " + second if second else "")
            elif self.accept_kw("ROLE"):
                self.equals()
                opts.role = self.expect_kw("WITNESS", "PARTNER", "ALL")
            else:
                raise self.error()
            self.accept_op(",")
            if self.accept_op(")"):
                break
        if require_role and opts.role is None:
            raise self.error(self.toks[self.pos - 1])
        return opts

    def authentication(self, opts: st.MirroringOptions) -> None:
        parts: list[str] = []
        for _ in range(2):
            if self.accept_kw("WINDOWS"):
                parts.append(self.accept_kw("NTLM", "KERBEROS", "NEGOTIATE") or "NEGOTIATE")
            elif self.accept_kw("CERTIFICATE"):
                opts.certificate = self.name()
                parts.append("CERTIFICATE")
            else:
                break
        if not parts or (len(parts) == 2 and "CERTIFICATE" not in parts):
            raise self.error()
        opts.connection_auth = AUTH_CODES[tuple(parts)]

    def create_login(self) -> st.CreateLogin:
        stmt = st.CreateLogin(self.name())
        if self.accept_kw("FROM"):
            if self.accept_kw("WINDOWS"):
                stmt.source = "windows"
                if self.accept_kw("WITH"):
                    self.login_options(stmt, allow_password=False)
                return stmt
            if self.accept_kw("CERTIFICATE"):
                stmt.source, stmt.certificate = "certificate", self.name()
                return stmt
            if self.at_kw("ASYMMETRIC", "EXTERNAL"):
                raise not_supported("CREATE LOGIN … FROM ASYMMETRIC KEY / EXTERNAL PROVIDER")
            raise self.error()
        self.expect_kw("WITH")
        self.expect_kw("PASSWORD")
        self.equals()
        if self.tok.kind == BINARY:
            self.binary()
            self.expect_kw("HASHED")
            raise not_supported("CREATE LOGIN … PASSWORD = hash HASHED")
        stmt.password = self.string()
        if self.accept_kw("MUST_CHANGE"):
            stmt.must_change = True
        if self.accept_op(","):
            self.login_options(stmt, allow_password=False)
        return stmt

    def login_options(self, stmt, allow_password: bool) -> None:
        while True:
            opt = self.expect_kw("CHECK_POLICY", "CHECK_EXPIRATION", "DEFAULT_DATABASE",
                                 "DEFAULT_LANGUAGE", "SID", "CREDENTIAL", "NAME", "PASSWORD",
                                 "OLD_PASSWORD")
            self.equals()
            if opt == "CHECK_POLICY":
                stmt.check_policy = self.on_off()
            elif opt == "CHECK_EXPIRATION":
                stmt.check_expiration = self.on_off()
            elif opt == "DEFAULT_DATABASE":
                stmt.default_database = self.name()
            elif opt == "DEFAULT_LANGUAGE" and hasattr(stmt, "default_language"):
                stmt.default_language = self.name()
            elif opt == "SID" and hasattr(stmt, "sid"):
                stmt.sid = self.binary()
            elif opt == "NAME" and hasattr(stmt, "new_name"):
                stmt.new_name = self.name()
            elif opt == "PASSWORD" and allow_password:
                stmt.password = self.string()
                if self.accept_kw("OLD_PASSWORD"):
                    self.equals()
                    stmt.old_password = self.string()
                while self.accept_kw("MUST_CHANGE", "UNLOCK"):
                    pass
            elif opt == "CREDENTIAL":
                raise not_supported("Login credentials")
            else:
                raise self.error(self.toks[self.pos - 2])
            if not self.accept_op(","):
                break

    def alter_login(self) -> st.AlterLogin:
        stmt = st.AlterLogin(self.name())
        if self.accept_kw("ENABLE"):
            stmt.enable = True
        elif self.accept_kw("DISABLE"):
            stmt.enable = False
        else:
            self.expect_kw("WITH")
            self.login_options(stmt, allow_password=True)
        return stmt

    def create_user(self) -> st.CreateUser:
        stmt = st.CreateUser(self.name())
        if self.accept_kw("FOR", "FROM"):
            if self.accept_kw("LOGIN"):
                stmt.login = self.name()
            elif self.accept_kw("CERTIFICATE"):
                stmt.certificate = self.name()
            else:
                raise not_supported("CREATE USER … FROM ASYMMETRIC KEY / EXTERNAL PROVIDER")
        elif self.accept_kw("WITHOUT"):
            self.expect_kw("LOGIN")
            stmt.without_login = True
        if self.accept_kw("WITH"):
            self.expect_kw("DEFAULT_SCHEMA")
            self.equals()
            stmt.default_schema = self.name()
        return stmt

    # GRANT / REVOKE / DENY -----------------------------------------------------------
    def permission(self) -> st.PermissionStatement:
        action = self.advance().value.upper()
        grant_option_for = False
        if action == "REVOKE" and self.at_kw("GRANT") and self.peek().is_kw("OPTION"):
            self.advance()
            self.advance()
            self.expect_kw("FOR")
            grant_option_for = True
        perms: list[str] = []
        while True:
            words = []
            while self.tok.kind == IDENT and not self.tok.is_kw("ON", "TO", "FROM"):
                words.append(self.advance().value.upper())
            if not words:
                raise self.error()
            perms.append(" ".join(words))
            if not self.accept_op(","):
                break
        klass = securable = None
        if self.accept_kw("ON"):
            if self.tok.kind == IDENT and self.peek().is_op("::"):
                klass = self.advance().value.upper()
                self.advance()
            else:
                raise not_supported("Permissions on objects without a class qualifier")
            if klass != "ENDPOINT":
                raise not_supported(f"Permissions ON {klass}::")
            securable = self.name()
        self.expect_kw("TO", "FROM")
        principals = [self.grantee()]
        while self.accept_op(","):
            principals.append(self.grantee())
        stmt = st.PermissionStatement(action, perms, klass, securable, principals,
                                      grant_option_for=grant_option_for)
        if action == "GRANT" and self.accept_kw("WITH"):
            self.expect_kw("GRANT")
            self.expect_kw("OPTION")
            stmt.with_grant_option = True
        if action in ("REVOKE", "DENY") and self.accept_kw("CASCADE"):
            stmt.cascade = True
        if self.at_kw("AS") and not self.peek().is_kw("SELECT"):
            raise not_supported("GRANT … AS principal")
        return stmt

    def grantee(self) -> str:
        # PUBLIC is a reserved word that names the public role without brackets
        if self.at_kw("PUBLIC"):
            return self.advance().value.lower()
        return self.name()

    # databases, tables, DML ---------------------------------------------------------------
    def if_exists(self) -> bool:
        if self.at_kw("IF") and self.peek().is_kw("EXISTS"):
            self.advance()
            self.advance()
            return True
        return False

    def object_name(self) -> st.ObjectName:
        parts = [self.name()]
        while self.accept_op("."):
            parts.append(self.name() if not self.tok.is_op(".") else "")
        if len(parts) > 3:
            raise not_supported("Four-part names")
        parts = [None] * (3 - len(parts)) + parts
        return st.ObjectName(parts[2], parts[1] or None, parts[0] or None)

    def create_database(self) -> st.CreateDatabase:
        stmt = st.CreateDatabase(self.name())
        if self.accept_kw("CONTAINMENT"):
            self.equals()
            if self.expect_kw("NONE", "PARTIAL") == "PARTIAL":
                raise not_supported("CREATE DATABASE … CONTAINMENT = PARTIAL")
        if self.accept_kw("ON"):
            if self.accept_kw("PRIMARY"):
                pass
            stmt.files = self.file_specs()
            if self.accept_kw("LOG"):
                self.expect_kw("ON")
                stmt.log_files = self.file_specs()
        if self.at_kw("FOR"):
            raise not_supported("CREATE DATABASE … FOR ATTACH")
        if self.accept_kw("COLLATE"):
            self.name()
        if self.accept_kw("WITH"):
            while True:
                self.expect_ident()
                if self.accept_op("="):
                    self.advance()
                if not self.accept_op(","):
                    break
        return stmt

    def file_specs(self) -> list[st.FileSpec]:
        out = []
        while True:
            if self.accept_kw("FILEGROUP"):
                raise not_supported("CREATE DATABASE … FILEGROUP")
            self.expect_op("(")
            spec = st.FileSpec()
            while True:
                key = self.expect_ident().upper()
                self.equals()
                t = self.advance()
                if t.kind not in (STRING, NUMBER, IDENT, QIDENT):
                    raise self.error(t)
                value = t.value
                if t.kind == NUMBER and self.tok.kind == IDENT and self.tok.value.upper() in ("KB", "MB", "GB", "TB"):
                    value += self.advance().value.upper()
                elif t.kind == NUMBER and self.tok.is_op("%"):
                    self.advance()
                    value += "%"
                if key == "NAME":
                    spec.name = value
                elif key == "FILENAME":
                    spec.filename = value
                elif key in ("SIZE", "MAXSIZE", "FILEGROWTH", "NEWNAME"):
                    spec.options[key] = value
                else:
                    raise self.error(t)
                if not self.accept_op(","):
                    break
            self.expect_op(")")
            out.append(spec)
            if not (self.tok.is_op(",") and self.peek().is_op("(")):
                return out
            self.advance()

    def alter_database(self) -> st.Statement:
        database = "CURRENT" if self.accept_kw("CURRENT") else self.name()
        if self.at_kw("MODIFY", "ADD", "REMOVE", "COLLATE"):
            raise not_supported(f"ALTER DATABASE … {self.tok.value.upper()}")
        self.expect_kw("SET")
        if self.accept_kw("PARTNER"):
            if self.accept_op("="):
                return st.AlterDatabaseMirroring(database, "PARTNER", self.string())
            word = self.expect_kw("FAILOVER", "FORCE_SERVICE_ALLOW_DATA_LOSS", "OFF", "RESUME", "SUSPEND",
                                  "SAFETY", "TIMEOUT", "REDO_QUEUE")
            if word == "SAFETY":
                return st.AlterDatabaseMirroring(database, "SAFETY", self.expect_kw("FULL", "OFF"))
            if word == "TIMEOUT":
                return st.AlterDatabaseMirroring(database, "TIMEOUT", self.integer())
            if word == "REDO_QUEUE":
                if self.accept_kw("UNLIMITED"):
                    return st.AlterDatabaseMirroring(database, "REDO_QUEUE", None)
                n = self.integer()
                self.expect_kw("MB")
                return st.AlterDatabaseMirroring(database, "REDO_QUEUE", n)
            return st.AlterDatabaseMirroring(database, word, None)
        if self.accept_kw("WITNESS"):
            if self.accept_op("="):
                return st.AlterDatabaseMirroring(database, "WITNESS", self.string())
            self.expect_kw("OFF")
            return st.AlterDatabaseMirroring(database, "WITNESS OFF", None)
        if self.at_kw("HADR"):
            raise not_supported("ALTER DATABASE … SET HADR")
        if self.accept_kw("RECOVERY"):
            stmt = st.AlterDatabaseSet(database, "RECOVERY", self.expect_kw("FULL", "SIMPLE", "BULK_LOGGED"))
        else:
            word = self.expect_kw("SINGLE_USER", "RESTRICTED_USER", "MULTI_USER", "READ_ONLY", "READ_WRITE",
                                  "ONLINE", "OFFLINE")
            stmt = st.AlterDatabaseSet(database, word)
        if self.accept_kw("WITH"):
            if self.accept_kw("NO_WAIT"):
                stmt.rollback = "NO_WAIT"
            else:
                self.expect_kw("ROLLBACK")
                if self.accept_kw("IMMEDIATE"):
                    stmt.rollback = "IMMEDIATE"
                else:
                    self.expect_kw("AFTER")
                    stmt.rollback = f"AFTER {self.integer()}"
                    self.accept_kw("SECONDS")
        return stmt

    def create_table(self) -> st.CreateTable:
        table = self.object_name()
        self.expect_op("(")
        stmt = st.CreateTable(table, [])
        while True:
            if self.at_kw("CONSTRAINT", "PRIMARY", "UNIQUE"):
                stmt.constraints.append(self.table_constraint())
            else:
                self.column_spec(stmt)
            if not self.accept_op(","):
                break
        self.expect_op(")")
        if self.at_kw("ON", "WITH"):
            raise not_supported(f"CREATE TABLE … {self.tok.value.upper()}")
        return stmt

    def table_constraint(self) -> st.TableConstraint:
        name = self.name() if self.accept_kw("CONSTRAINT") else None
        kind = "PK" if self.accept_kw("PRIMARY") else None
        if kind:
            self.expect_kw("KEY")
        else:
            self.expect_kw("UNIQUE")
            kind = "UQ"
        self.accept_kw("CLUSTERED", "NONCLUSTERED")
        self.expect_op("(")
        cols = [self.name()]
        self.accept_kw("ASC", "DESC")
        while self.accept_op(","):
            cols.append(self.name())
            self.accept_kw("ASC", "DESC")
        self.expect_op(")")
        return st.TableConstraint(name, kind, cols)

    def column_spec(self, stmt: st.CreateTable) -> None:
        name = self.name()
        type_start = self.tok
        self.type_name()
        col = st.ColumnSpec(name, self.sql[type_start.start:self.toks[self.pos - 1].end])
        while True:
            if self.accept_kw("NULL"):
                col.nullable = True
            elif self.at_kw("NOT") and self.peek().is_kw("NULL"):
                self.advance()
                self.advance()
                col.nullable = False
            elif self.accept_kw("IDENTITY"):
                col.identity = (1, 1)
                if self.accept_op("("):
                    seed = self.integer()
                    self.expect_op(",")
                    col.identity = (seed, self.integer())
                    self.expect_op(")")
            elif self.at_kw("CONSTRAINT", "PRIMARY", "UNIQUE", "DEFAULT"):
                cname = self.name() if self.accept_kw("CONSTRAINT") else None
                if self.accept_kw("DEFAULT"):
                    col.default = self.expression()
                    continue
                kind = "PK" if self.accept_kw("PRIMARY") else None
                if kind:
                    self.expect_kw("KEY")
                else:
                    self.expect_kw("UNIQUE")
                    kind = "UQ"
                self.accept_kw("CLUSTERED", "NONCLUSTERED")
                stmt.constraints.append(st.TableConstraint(cname, kind, [name]))
            elif self.at_kw("COLLATE"):
                self.advance()
                self.name()
            elif self.at_kw("CHECK", "REFERENCES", "FOREIGN"):
                raise not_supported(f"{self.tok.value.upper()} constraints")
            else:
                break
        stmt.columns.append(col)

    def dml(self) -> st.Dml:
        start = self.tok
        kind = self.advance().value.upper()
        if kind == "INSERT":
            self.accept_kw("INTO")
            self.object_name()
            if self.tok.is_op("("):
                self.advance()
                while not self.accept_op(")"):
                    if self.tok.kind == EOF:
                        raise self.error()
                    self.advance()
            if self.accept_kw("VALUES"):
                while True:
                    self.expect_op("(")
                    depth = 1
                    while depth:
                        t = self.advance()
                        if t.kind == EOF:
                            raise self.error(t)
                        depth += 1 if t.is_op("(") else -1 if t.is_op(")") else 0
                    if not self.accept_op(","):
                        break
                end = self.toks[self.pos - 1].end
            elif self.accept_kw("DEFAULT"):
                self.expect_kw("VALUES")
                end = self.toks[self.pos - 1].end
            elif self.at_kw("SELECT", "WITH") or self.tok.is_op("("):
                end = self.select_statement().text and self.toks[self.pos - 1].end
            elif self.at_kw("EXEC", "EXECUTE"):
                raise not_supported("INSERT … EXEC")
            else:
                raise self.error()
        elif kind == "UPDATE":
            if self.at_kw("TOP"):
                raise not_supported("UPDATE TOP")
            self.object_name()
            self.expect_kw("SET")
            while True:
                self.name()
                self.expect_op("=", "+=", "-=", "*=", "/=")
                self.expression()
                if not self.accept_op(","):
                    break
            end = self.toks[self.pos - 1].end
            if self.at_kw("FROM", "WHERE", "OUTPUT", "OPTION"):
                end = self.scan_to_statement_end(allow_select_continuation=False)
        else:
            end = self.scan_to_statement_end(allow_select_continuation=False)
        return st.Dml(kind, self.sql[start.start:end])

    # BACKUP ----------------------------------------------------------------------------
    def backup(self) -> st.Statement:
        self.expect_kw("BACKUP")
        kind = self.accept_kw("DATABASE", "LOG")
        if kind:
            return self.backup_database(kind)
        if not self.accept_kw("CERTIFICATE"):
            raise not_supported(f"BACKUP {self.sql[self.tok.start:self.tok.end].upper()}")
        name = self.name()
        self.expect_kw("TO")
        self.expect_kw("FILE")
        self.equals()
        stmt = st.BackupCertificate(name, self.string())
        if self.accept_kw("WITH"):
            if self.at_kw("FORMAT"):
                raise not_supported("BACKUP CERTIFICATE … WITH FORMAT = 'PFX'")
            self.expect_kw("PRIVATE")
            self.expect_kw("KEY")
            stmt.private_key = self.private_key_options(allow_binary=False)
            if stmt.private_key.file is None:
                raise self.error()
        return stmt

    def backup_database(self, kind: str) -> st.BackupDatabase:
        database = self.name()
        if self.at_kw("FILE", "FILEGROUP", "READ_WRITE_FILEGROUPS"):
            raise not_supported(f"BACKUP {kind} … {self.tok.value.upper()} (file and partial backups)")
        self.expect_kw("TO")
        stmt = st.BackupDatabase(kind, database, self.devices())
        if self.accept_kw("MIRROR"):
            raise not_supported("BACKUP … MIRROR TO")
        if self.accept_kw("WITH"):
            stmt.options = self.media_options(_BACKUP_OPTIONS)
        return stmt

    def restore(self) -> st.Statement:
        self.expect_kw("RESTORE")
        kind = self.accept_kw("DATABASE", "LOG", "HEADERONLY", "FILELISTONLY", "VERIFYONLY")
        if kind is None:
            raise not_supported(f"RESTORE {self.sql[self.tok.start:self.tok.end].upper()}")
        database = None
        if kind in ("DATABASE", "LOG"):
            database = self.name()
            if self.at_kw("FILE", "FILEGROUP", "PAGE", "READ_WRITE_FILEGROUPS"):
                raise not_supported(f"RESTORE {kind} … {self.tok.value.upper()} (piecemeal restores)")
        disks: list[str] = []
        if self.accept_kw("FROM"):
            if self.at_kw("DATABASE_SNAPSHOT"):
                raise not_supported("RESTORE DATABASE … FROM DATABASE_SNAPSHOT")
            disks = self.devices()
        elif kind != "DATABASE":
            raise self.error()
        stmt = st.RestoreDatabase(kind, database, disks)
        if self.accept_kw("WITH"):
            stmt.options = self.media_options(_RESTORE_OPTIONS, stmt.moves)
        return stmt

    def devices(self) -> list[str]:
        """DISK = '…' [, DISK = '…' …]; other device kinds are not the lab's."""
        out = []
        while True:
            if self.at_kw("URL", "TAPE"):
                raise not_supported(f"Backup devices of type {self.tok.value.upper()} (the lab has DISK)")
            if not self.at_kw("DISK"):
                if self.tok.kind in (IDENT, QIDENT, VAR) and not self.peek().is_op("="):
                    raise not_supported("Logical backup devices (sp_addumpdevice); use DISK = 'path'")
                raise self.error()
            self.advance()
            self.equals()
            out.append(self.string())
            if not self.accept_op(","):
                return out

    def media_options(self, allowed: dict[str, str], moves: Optional[list] = None) -> dict:
        """WITH options of BACKUP/RESTORE: flag | NAME = value | STATS [= n] | MOVE 'a' TO 'b'."""
        out: dict = {}
        while True:
            t = self.tok
            if t.kind != IDENT:
                raise self.error()
            word = t.value.upper()
            kind = allowed.get(word)
            if kind is None:
                raise self.error()
            self.advance()
            if kind == "unsupported":
                raise not_supported(f"The {word} option of BACKUP/RESTORE")
            if kind == "move":
                logical = self.string()
                self.expect_kw("TO")
                assert moves is not None
                moves.append((logical, self.string()))
            elif kind == "flag":
                out[word] = True
            elif kind == "stats":
                out[word] = self.integer() if self.accept_op("=") else 10
            elif kind == "int":
                self.equals()
                out[word] = self.integer()
            elif kind == "str":
                self.equals()
                out[word] = self.string()
            if not self.accept_op(","):
                return out

    # transactions, USE, OPEN/CLOSE ----------------------------------------------------
    def begin(self) -> st.Statement:
        self.expect_kw("BEGIN")
        if self.accept_kw("TRAN", "TRANSACTION"):
            if self.tok.kind in (IDENT, QIDENT, VAR) and not self.tok.is_kw(*STATEMENT_START):
                self.advance()
            return st.BeginTran()
        if self.at_kw("DISTRIBUTED"):
            raise not_supported("BEGIN DISTRIBUTED TRANSACTION")
        if self.at_kw("TRY"):
            raise not_supported("BEGIN TRY … END TRY")
        body: list[st.Statement] = []
        while True:
            while self.accept_op(";"):
                pass
            if self.accept_kw("END"):
                return st.Block(body)
            if self.tok.kind == EOF:
                raise self.error()
            body.append(self.statement())

    def commit(self) -> st.Statement:
        self.advance()
        if self.accept_kw("TRAN", "TRANSACTION", "WORK"):
            if self.tok.kind in (IDENT, QIDENT, VAR) and not self.tok.is_kw(*STATEMENT_START):
                self.advance()
        return st.CommitTran()

    def rollback(self) -> st.Statement:
        self.advance()
        if self.accept_kw("TRAN", "TRANSACTION", "WORK"):
            if self.tok.kind in (IDENT, QIDENT, VAR) and not self.tok.is_kw(*STATEMENT_START):
                self.advance()
        return st.RollbackTran()

    def use(self) -> st.Use:
        self.expect_kw("USE")
        return st.Use(self.name())

    def open_(self) -> st.Statement:
        self.expect_kw("OPEN")
        if not self.accept_kw("MASTER"):
            raise not_supported(f"OPEN {self.sql[self.tok.start:self.tok.end].upper()}")
        self.expect_kw("KEY")
        self.expect_kw("DECRYPTION")
        self.expect_kw("BY")
        self.expect_kw("PASSWORD")
        self.equals()
        return st.OpenMasterKey(self.string())

    def close(self) -> st.Statement:
        self.expect_kw("CLOSE")
        if not self.accept_kw("MASTER"):
            raise not_supported(f"CLOSE {self.sql[self.tok.start:self.tok.end].upper()}")
        self.expect_kw("KEY")
        return st.CloseMasterKey()

    # control flow -------------------------------------------------------------------------
    def if_(self) -> st.If:
        self.expect_kw("IF")
        cond = self.condition()
        then = self.statement()
        otherwise = None
        if self.accept_kw("ELSE"):
            otherwise = self.statement()
        return st.If(cond, then, otherwise)

    def condition(self) -> st.Expr:
        start = self.tok
        end = self.scan_to_statement_end(allow_select_continuation=False)
        if end <= start.start:
            raise self.error()
        return st.Expr(self.sql[start.start:end], start.line)

    def print_(self) -> st.Print:
        self.expect_kw("PRINT")
        return st.Print(self.expression())

    def declare(self) -> st.Declare:
        self.expect_kw("DECLARE")
        out = []
        while True:
            t = self.tok
            if t.kind != VAR:
                raise self.error()
            self.advance()
            self.accept_kw("AS")
            if self.at_kw("TABLE", "CURSOR"):
                raise not_supported(f"DECLARE … {self.tok.value.upper()}")
            type_start = self.tok
            self.type_name()
            sqltype = self.sql[type_start.start:self.toks[self.pos - 1].end]
            init = None
            if self.accept_op("="):
                init = self.expression()
            out.append((t.value, sqltype, init))
            if not self.accept_op(","):
                break
        return st.Declare(out)

    def type_name(self) -> None:
        self.name()
        if self.accept_op("("):
            while not self.accept_op(")"):
                if self.tok.kind == EOF:
                    raise self.error()
                self.advance()

    def set_(self) -> st.Statement:
        self.expect_kw("SET")
        t = self.tok
        if t.kind == VAR:
            self.advance()
            op = self.expect_op("=", "+=", "-=", "*=", "/=")
            return st.SetVariable(t.value, op, self.expression())
        if self.accept_kw("TRANSACTION"):
            self.expect_kw("ISOLATION")
            self.expect_kw("LEVEL")
            words = []
            while self.tok.kind == IDENT and not self.tok.is_kw(*STATEMENT_START):
                words.append(self.advance().value.upper())
            return st.SetOption("TRANSACTION ISOLATION LEVEL", " ".join(words))
        options = []
        while True:
            options.append(self.expect_ident().upper())
            if not self.accept_op(","):
                break
        v = self.tok
        if v.kind in (IDENT, NUMBER, STRING, VAR) and not (v.kind == IDENT and v.upper in STATEMENT_START
                                                          and v.upper not in ("ON", "OFF")):
            self.advance()
            value = v.value.upper() if v.kind == IDENT else v.value
        else:
            raise self.error()
        return st.SetOption(",".join(options), value)

    def expect_ident(self) -> str:
        t = self.tok
        if t.kind != IDENT:
            raise self.error()
        self.advance()
        return t.value

    def exec_(self) -> st.Statement:
        self.advance()  # EXEC / EXECUTE
        if self.tok.is_op("("):
            self.advance()
            expr = self.expression()
            self.expect_op(")")
            if self.at_kw("AS", "AT"):
                raise not_supported("EXEC (…) AS / AT")
            return st.Exec(None, [], dynamic=expr)
        if self.at_kw("AS"):
            raise not_supported("EXECUTE AS")
        return self.exec_body()

    def exec_body(self) -> st.Exec:
        return_var = None
        if self.tok.kind == VAR and self.peek().is_op("="):
            return_var = self.advance().value
            self.advance()
        parts = [self.name()]
        while self.accept_op("."):
            parts.append(self.name() if not self.tok.is_op(".") else "")
        proc = ".".join(parts)
        args: list[st.ExecArg] = []
        t = self.tok
        if t.kind != EOF and not t.is_op(";") and not (t.kind == IDENT and t.upper in STATEMENT_START):
            while True:
                name = None
                if self.tok.kind == VAR and self.peek().is_op("="):
                    name = self.advance().value
                    self.advance()
                expr = self.exec_argument()
                output = bool(self.accept_kw("OUTPUT", "OUT"))
                args.append(st.ExecArg(name, expr, output))
                if not self.accept_op(","):
                    break
        return st.Exec(proc, args, return_var=return_var)

    def exec_argument(self) -> st.Expr:
        """EXEC arguments are constants, variables, DEFAULT or bare words — not expressions."""
        t = self.tok
        if t.is_kw("DEFAULT"):
            self.advance()
            return st.Expr("DEFAULT", t.line)
        if t.kind == VAR:
            self.advance()
            return st.Expr(t.value, t.line)
        if t.kind in (IDENT, QIDENT) and not (t.kind == IDENT and t.upper == "NULL"):
            # a bare identifier is a character-string argument (EXEC sp_help authors)
            self.advance()
            return st.Expr("N'" + t.value.replace("'", "''") + "'", t.line)
        start = t
        if t.is_op("-", "+"):
            self.advance()
        lit = self.tok
        if lit.kind in (STRING, NUMBER, BINARY) or lit.is_kw("NULL"):
            self.advance()
            return st.Expr(self.sql[start.start:lit.end], start.line)
        raise self.error(lit)

    def return_(self) -> st.Return:
        self.expect_kw("RETURN")
        return st.Return()

    def raiserror(self) -> st.RaiseError:
        self.expect_kw("RAISERROR")
        self.expect_op("(")
        msg = self.expression()
        self.expect_op(",")
        sev = self.expression()
        self.expect_op(",")
        state = self.expression()
        args = []
        while self.accept_op(","):
            args.append(self.expression())
        self.expect_op(")")
        if self.accept_kw("WITH"):
            while self.accept_kw("LOG", "NOWAIT", "SETERROR"):
                self.accept_op(",")
        return st.RaiseError(msg, sev, state, args)

    def throw(self) -> st.RaiseError:
        self.expect_kw("THROW")
        number = self.expression()
        self.expect_op(",")
        msg = self.expression()
        self.expect_op(",")
        state = self.expression()
        return st.RaiseError(msg, st.Expr("16", number.line), state, [], number=number)

    def else_or_end(self) -> st.Statement:
        raise self.error()

    def go(self) -> st.Statement:
        # GO is a client-side batch separator (sqlcmd/SSMS), not T-SQL.
        raise self.error()

    _DISPATCH: dict[str, Callable[["Parser"], st.Statement]] = {
        "SELECT": select_statement, "WITH": select_statement,
        "CREATE": create, "ALTER": alter, "DROP": drop,
        "GRANT": permission, "REVOKE": permission, "DENY": permission,
        "BACKUP": backup, "RESTORE": restore, "BEGIN": begin, "COMMIT": commit, "ROLLBACK": rollback,
        "USE": use, "OPEN": open_, "CLOSE": close, "IF": if_, "PRINT": print_,
        "DECLARE": declare, "SET": set_, "EXEC": exec_, "EXECUTE": exec_,
        "RETURN": return_, "RAISERROR": raiserror, "THROW": throw,
        "ELSE": else_or_end, "END": else_or_end, "GO": go,
        "INSERT": dml, "UPDATE": dml, "DELETE": dml,
    }
