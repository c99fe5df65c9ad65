"""mirrorkit-lab: a local stand-in SQL Server for the mirrorkit runbook kit (TDS, T-SQL subset,
catalog views, and certificate-authenticated DATABASE_MIRRORING endpoints)."""

__version__ = "0.1.0"
