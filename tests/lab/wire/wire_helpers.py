"""Helpers shared by the wire-layer tests."""
from __future__ import annotations

import ssl


def make_ssl_context(cert_files) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_files)
    return ctx


def odbc_string(port: int, user: str = "sa", password: str = "Secret1!", version: str = "7.4",
                extra: str = "") -> str:
    return (f"DRIVER={{FreeTDS}};SERVER=127.0.0.1;PORT={port};UID={user};PWD={password};"
            f"TDS_Version={version};{extra}")
