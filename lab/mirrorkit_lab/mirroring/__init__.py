"""Database mirroring sessions (issue #11): partner and witness roles, the log stream,
quorum and failover, over the transport's certificate-authenticated links. The engine sees
this package only as engine.context.DatabaseMirroring."""
from .layer import MirroringLayer

__all__ = ["MirroringLayer"]
