"""Statement handlers by statement class (the DDL of the lab's subset)."""
from __future__ import annotations

from . import ddl_endpoints, ddl_keys, ddl_security

HANDLERS = {**ddl_keys.HANDLERS, **ddl_security.HANDLERS, **ddl_endpoints.HANDLERS}
