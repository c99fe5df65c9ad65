"""mirrorkit: certificate trust for SQL Server DATABASE_MIRRORING endpoints."""

__version__ = "0.1.0"
