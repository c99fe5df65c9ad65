"""Connections with pyodbc: connection strings for Microsoft's ODBC Driver 18 and for
FreeTDS, values brace-escaped, autocommit on, a login timeout, APP=mirrorkit/<version>."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import __version__
from .credentials import Secret

MS_DRIVER_PREFIX = "ODBC Driver"


class ConnectionFailed(Exception):
    """Could not connect; the message names the instance and what to do next."""


def brace(value: str) -> str:
    """An ODBC connection-string value: {…} with } doubled, so ; and = are safe."""
    return "{" + str(value).replace("}", "}}") + "}"


@dataclass(frozen=True)
class Target:
    instance: str
    server: str                 # HOST,PORT or HOST\INSTANCE
    driver: str
    authentication: str         # sql | windows
    user: Optional[str]
    password: Optional[Secret]
    encrypt: str = "yes"        # yes | no | strict | optional
    trust_server_certificate: bool = False
    host_name_in_certificate: Optional[str] = None
    login_timeout: int = 15
    tds_version: str = "7.4"


def connection_string(t: Target, *, reveal: bool = False) -> str:
    """The string for pyodbc; with reveal=False the password shows as ********."""
    freetds = "freetds" in t.driver.lower()
    parts = [f"DRIVER={brace(t.driver)}"]
    if freetds:
        host, _, port = t.server.partition(",")
        parts.append(f"SERVER={brace(host)}")
        if port:
            parts.append(f"PORT={port.strip()}")
        parts.append(f"TDS_Version={t.tds_version}")
        parts.append("Encryption=" + {"yes": "require", "strict": "require", "optional": "request",
                                      "no": "off"}[t.encrypt])
    else:
        parts.append(f"SERVER={brace('tcp:' + t.server if ',' in t.server else t.server)}")
        parts.append("Encrypt=" + {"yes": "yes", "strict": "strict", "optional": "optional", "no": "no"}[t.encrypt])
        parts.append(f"TrustServerCertificate={'yes' if t.trust_server_certificate else 'no'}")
        if t.host_name_in_certificate:
            parts.append(f"HostNameInCertificate={brace(t.host_name_in_certificate)}")
    parts.append("DATABASE=master")
    parts.append(f"APP={brace('mirrorkit/' + __version__)}")
    if t.authentication == "windows":
        parts.append("Trusted_Connection=yes")
    else:
        parts.append(f"UID={value(t.user or '', freetds, 'user')}")
        pwd = t.password.reveal() if (reveal and t.password is not None) else "********"
        parts.append(f"PWD={value(pwd, freetds, 'password')}")
    return ";".join(parts) + ";"


def value(text: str, freetds: bool, what: str) -> str:
    """A connection-string value. FreeTDS ends a {…} value at the first "};" and takes every other }
    literally (it does not read }} as one brace, as the ODBC rule and Microsoft's driver do)."""
    if not freetds:
        return brace(text)
    if "};" in text:
        raise ConnectionFailed(f"the {what} contains '}};', which the FreeTDS ODBC driver cannot take in a "
                               "connection string; use another value or Microsoft's ODBC Driver 18")
    return "{" + text + "}"


def driver_hint(driver: str) -> str:
    try:
        import pyodbc
        installed = pyodbc.drivers()
    except ImportError:
        installed = []
    have = ", ".join(repr(d) for d in installed) or "none"
    return (f"the ODBC driver {driver!r} is not installed (installed: {have}). Install it — "
            "Microsoft's 'ODBC Driver 18 for SQL Server' from packages.microsoft.com "
            "(ACCEPT_EULA=Y apt-get install msodbcsql18), or FreeTDS (apt-get install tdsodbc) — or set "
            "connection.driver in the parameter file to one of the installed drivers")


def connect(t: Target):
    """pyodbc connection with autocommit (endpoint DDL is refused inside a transaction)."""
    import pyodbc
    if t.driver not in pyodbc.drivers() and not t.driver.startswith("/"):
        raise ConnectionFailed(f"{t.instance}: {driver_hint(t.driver)}")
    try:
        return pyodbc.connect(connection_string(t, reveal=True), autocommit=True, timeout=t.login_timeout)
    except pyodbc.Error as exc:
        from .credentials import REGISTRY
        detail = REGISTRY.redact(str(exc.args[-1] if exc.args else exc))
        raise ConnectionFailed(f"{t.instance}: cannot connect to {t.server} as "
                               f"{'Windows/Kerberos' if t.authentication == 'windows' else repr(t.user)}: "
                               f"{detail}. Check that the server is reachable, the credentials in the "
                               "parameter file's connection settings, and the driver's encryption settings.") from None
