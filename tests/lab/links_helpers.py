"""Shared pieces of the link tests (tests/lab/test_transport_links*.py): two instances set up per the
documented procedure (mirroring_setup.two_way), their transports, and waiting with deadlines."""
from __future__ import annotations

import time
from typing import Callable

from mirroring_setup import ENDPOINT, two_way, url

A, B = "HOST_A", "HOST_B"


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.05):
    """The predicate's first truthy value, or its last value once `timeout` passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


class Pair:
    def __init__(self, lab_factory):
        self.lab = two_way(lab_factory, A, B)
        self.a, self.b = self.lab[A], self.lab[B]
        self.ta, self.tb = self.a.running.transport, self.b.running.transport
        self.links = []

    def link(self, source: str = A, target: str = B, role: str = "PARTNER", up: bool = True):
        t = self.lab[source].running.transport
        link = t.link(url(self.lab[target]), role)
        self.links.append(link)
        if up:
            assert link.wait_up(15), f"{source} -> {target} did not come up: {link.last_outcome}"
        return link

    def alter(self, name: str, clause: str) -> None:
        self.lab[name].sql(f"ALTER ENDPOINT {ENDPOINT} {clause}")

    def connection_ids(self, name: str, is_accept: int) -> set[str]:
        rows = self.lab[name].sql("SELECT connection_id FROM sys.dm_db_mirroring_connections "
                                  "WHERE is_accept = ?", is_accept)
        return {str(r[0]) for r in rows}

    def close(self) -> None:
        for link in self.links:
            link.close()
