"""Fixtures for the TDS wire-layer tests: a fake engine behind a real TdsServer
on 127.0.0.1 (ephemeral port), and a throw-away self-signed certificate."""
from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from fake_engine import FakeInstance
from mirrorkit_lab.tds.server import TdsServer
from wire_helpers import make_ssl_context


@pytest.fixture
def engine() -> FakeInstance:
    return FakeInstance()


@pytest.fixture(params=["watcher", "reader-thread"])
def any_mode_server(engine, request):
    """Both ways of noticing ATTENTION: the shared epoll watcher, a reader thread."""
    srv = TdsServer(engine, "127.0.0.1", 0, login_timeout=5.0,
                    attention_watcher=request.param == "watcher")
    srv.start()
    yield srv
    srv.shutdown()


@pytest.fixture
def server(engine):
    srv = TdsServer(engine, "127.0.0.1", 0, login_timeout=5.0)
    srv.start()
    yield srv
    srv.shutdown()


@pytest.fixture
def port(server) -> int:
    return server.address[1]


@pytest.fixture(scope="session")
def cert_files(tmp_path_factory):
    """A self-signed RSA certificate for CN=localhost / 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = d / "cert.pem"
    key_path = d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server_factory(engine, cert_files):
    started = []

    def make(encryption: str = "optional") -> TdsServer:
        srv = TdsServer(engine, "127.0.0.1", 0, ssl_context=make_ssl_context(cert_files),
                        encryption=encryption, login_timeout=5.0)
        srv.start()
        started.append(srv)
        return srv

    yield make
    for s in started:
        s.shutdown()
