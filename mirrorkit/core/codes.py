"""SQL Server's codes and descriptions the kit reads from catalog views: one table per mapping.

Sources: sys.database_mirroring_endpoints (encryption_algorithm_desc, role_desc) and
sys.certificates (pvt_key_encryption_type), docs/relational-databases/system-catalog-views/.
"""
from __future__ import annotations

from typing import Optional

# encryption_algorithm_desc → (ENCRYPTION mode, algorithms in preference order), as CREATE ENDPOINT's
# ENCRYPTION = { DISABLED | SUPPORTED | REQUIRED } [ ALGORITHM { AES | RC4 | AES RC4 | RC4 AES } ] shows it
ENCRYPTION: dict[str, tuple[str, tuple[str, ...]]] = {
    "NONE": ("DISABLED", ()),
    "RC4": ("REQUIRED", ("RC4",)),
    "AES": ("REQUIRED", ("AES",)),
    "NONE, RC4": ("SUPPORTED", ("RC4",)),
    "NONE, AES": ("SUPPORTED", ("AES",)),
    "RC4, AES": ("REQUIRED", ("RC4", "AES")),
    "AES, RC4": ("REQUIRED", ("AES", "RC4")),
    "NONE, RC4, AES": ("SUPPORTED", ("RC4", "AES")),
    "NONE, AES, RC4": ("SUPPORTED", ("AES", "RC4")),
}
_DESC = {(mode, " ".join(algorithms) or None): desc for desc, (mode, algorithms) in ENCRYPTION.items()}


def algorithm_desc(encryption: str, algorithm: Optional[str]) -> str:
    """The encryption_algorithm_desc an endpoint created with these parameters shows."""
    mode = encryption.upper()
    return _DESC[(mode, None if mode == "DISABLED" else (algorithm or "AES").upper())]


def encryption_of(desc: Optional[str]) -> Optional[tuple[str, tuple[str, ...]]]:
    """(mode, algorithms) of an encryption_algorithm_desc; None for a description the kit does not know."""
    return ENCRYPTION.get(desc or "")


# role_desc → the connection roles the endpoint accepts
ROLE_SERVES: dict[str, tuple[str, ...]] = {
    "PARTNER": ("PARTNER",), "WITNESS": ("WITNESS",), "ALL": ("PARTNER", "WITNESS"), "NONE": (),
}

# pvt_key_encryption_type → what it means for an endpoint certificate (only MK works: 28055 otherwise)
PRIVATE_KEY = {
    "MK": "has its private key encrypted by the master key",
    "NA": "has no private key",
    "PW": "has its private key encrypted by a password",
    "SK": "has its private key encrypted by the service master key",
}
