"""Statement handlers by statement class (the DDL and DML of the lab's subset)."""
from __future__ import annotations

from . import backup, ddl_databases, ddl_endpoints, ddl_keys, ddl_security, ddl_tables, dml

HANDLERS = {**ddl_keys.HANDLERS, **ddl_security.HANDLERS, **ddl_endpoints.HANDLERS, **ddl_databases.HANDLERS,
            **ddl_tables.HANDLERS, **dml.HANDLERS,
            **backup.HANDLERS}
