"""Public-certificate artifacts: `<instance>.cer` (DER, from CERTENCODED) and
`<instance>.json` (thumbprint, subject, serial, validity). Public keys travel;
private keys never leave the server."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from .. import __version__


class ArtifactError(Exception):
    pass


@dataclass(frozen=True)
class CertificateArtifact:
    instance: str
    certificate_name: str
    der: bytes
    thumbprint: bytes
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime

    @property
    def thumbprint_hex(self) -> str:
        return self.thumbprint.hex().upper()

    def metadata(self) -> dict:
        return {
            "instance": self.instance, "certificate_name": self.certificate_name,
            "thumbprint": "0x" + self.thumbprint_hex, "sha256": hashlib.sha256(self.der).hexdigest(),
            "subject": self.subject, "issuer": self.issuer, "serial": self.serial,
            "not_before": self.not_before.isoformat(), "not_after": self.not_after.isoformat(),
            "kit_version": __version__,
        }


def file_stem(instance: str) -> str:
    """A file name for any instance name: keep letters, digits, - _ . and escape the rest."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else f"%{ord(c):04X}" for c in instance)


def describe(instance: str, certificate_name: str, der: bytes) -> CertificateArtifact:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ArtifactError(f"{instance}: the certificate bytes are not a DER X.509 certificate ({exc})") from None

    def cn(name: x509.Name) -> str:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else name.rfc4514_string()
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8 or 1, "big")
    return CertificateArtifact(
        instance, certificate_name, der, hashlib.sha1(der).digest(), cn(cert.subject), cn(cert.issuer),
        " ".join(f"{b:02x}" for b in serial[:16]),
        cert.not_valid_before_utc.replace(tzinfo=None), cert.not_valid_after_utc.replace(tzinfo=None))


def _write_new(path: Path, data: bytes) -> None:
    """Create path with data; never overwrite a different file; an identical one is fine."""
    if path.exists():
        if path.read_bytes() == data:
            return
        raise ArtifactError(f"{path} exists with other contents; the kit never overwrites a file — move it away "
                            "(or use a fresh certificate_dir) and run again")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        if path.read_bytes() != data:
            raise ArtifactError(f"{path} appeared with other contents while writing") from None
    finally:
        tmp.unlink(missing_ok=True)


def export(directory: Path, artifact: CertificateArtifact) -> tuple[Path, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = file_stem(artifact.instance)
    cer, meta = directory / f"{stem}.cer", directory / f"{stem}.json"
    _write_new(cer, artifact.der)
    _write_new(meta, (json.dumps(artifact.metadata(), indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return cer, meta


def load(directory: Path, instance: str) -> CertificateArtifact:
    stem = file_stem(instance)
    cer, meta = Path(directory) / f"{stem}.cer", Path(directory) / f"{stem}.json"
    if not cer.exists() or not meta.exists():
        raise ArtifactError(f"no certificate artifact for {instance} in {directory} (expected {cer.name} and "
                            f"{meta.name}); run notebooks/outbound.ipynb with target {instance} first")
    der = cer.read_bytes()
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except ValueError:
        raise ArtifactError(f"{meta} is not valid JSON") from None
    artifact = describe(instance, str(info.get("certificate_name", "")), der)
    if str(info.get("thumbprint", "")).upper() != "0X" + artifact.thumbprint_hex:
        raise ArtifactError(f"{cer}: its SHA-1 thumbprint 0x{artifact.thumbprint_hex} does not match "
                            f"{meta.name} ({info.get('thumbprint')}); the artifact was altered — export it again")
    return artifact


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
