"""A Session: the connections, secrets and catalog reads of one run, for notebooks, `mirrorkit verify`,
bench and tests alike."""
from __future__ import annotations

from typing import Any, Optional

from ..access.connection import Target, connect
from ..access.credentials import Secret, resolve
from ..config.model import connection_secret_label
from ..config.parameters import Environment, Instance
from ..core import catalog


class Session:
    def __init__(self, env: Environment, *, interactive: bool = False):
        self.env = env
        self.interactive = interactive
        self._connections: dict[str, Any] = {}
        self._states: dict[str, catalog.InstanceState] = {}

    def secret(self, reference: Any, label: str) -> Secret:
        return resolve(reference, label, interactive=self.interactive)

    def connection(self, instance: Instance):
        """One pyodbc connection per instance, opened on first use (autocommit)."""
        key = instance.name.lower()
        if key not in self._connections:
            c = instance.connection
            password = self.secret(c.password, connection_secret_label(instance)) \
                if c.authentication == "sql" else None
            self._connections[key] = connect(Target(
                instance.name, instance.server, c.driver, c.authentication, c.user, password, c.encrypt,
                c.trust_server_certificate, c.host_name_in_certificate, c.login_timeout, c.tds_version))
        return self._connections[key]

    def state(self, instance: Instance, refresh: bool = False) -> catalog.InstanceState:
        """The instance's catalog, read once and cached until refresh."""
        key = instance.name.lower()
        if refresh or key not in self._states:
            self._states[key] = catalog.read_state(self.connection(instance))
        return self._states[key]

    def certencoded(self, instance: Instance, certificate_name: str) -> Optional[bytes]:
        return catalog.certencoded(self.connection(instance), certificate_name)

    def close(self) -> None:
        for c in self._connections.values():
            try:
                c.close()
            except Exception:   # a connection the server already dropped
                pass
        self._connections.clear()
        self._states.clear()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
