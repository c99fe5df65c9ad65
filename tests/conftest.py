"""Shared fixtures: lab instances served in-process on fresh loopback addresses.

Each test that asks for `lab` gets new instances with their own state directory,
each on its own 127.0.x.y address with the real ports (1433 TDS, 5022 mirroring),
so tests never collide and talk to the lab through the real client stack.
"""
from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import settings

# Hypothesis: derandomized by default, so a red CI run draws the same examples on every machine and
# reproduces; MIRRORKIT_HYPOTHESIS_RANDOM=1 (or --hypothesis-profile=random) draws fresh examples, as a
# nightly run should, and prints the seed of a failure (@seed) for the reproduction.
settings.register_profile("derandomized", derandomize=True, database=None)
settings.register_profile("random", derandomize=False, print_blob=True)
settings.load_profile("random" if os.environ.get("MIRRORKIT_HYPOTHESIS_RANDOM", "") not in ("", "0") else "derandomized")

SA_PASSWORD = "Lab-Test-Passw0rd!"
# one counter per process, even when this file is imported a second time as tests.conftest
_addresses = sys.__dict__.setdefault("_mirrorkit_test_addresses", itertools.count(1))
# differs between runs (no address lingers in TIME_WAIT) and between pytest-xdist workers
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
_run = (os.getpid() % 50) * 4 + _worker % 4 + 20


def next_address() -> str:
    """A fresh loopback address for one lab instance."""
    n = next(_addresses)
    return f"127.{_run}.{n // 250 + 1}.{n % 250 + 1}"


@dataclass
class LabHandle:
    name: str
    host: str
    port: int
    running: object
    state_dir: Path

    def connect(self, *, database: str = "master", autocommit: bool = True, user: str = "sa",
                password: str = SA_PASSWORD, timeout: int = 10, extra: str = ""):
        import pyodbc
        return pyodbc.connect(odbc_string(self.host, self.port, user, password, database) + extra,
                              autocommit=autocommit, timeout=timeout)

    def sql(self, statement: str, *params):
        """Run one statement on a fresh connection and return the rows (or [])."""
        with self.connect() as cn:
            cur = cn.cursor()
            cur.execute(statement, *params)
            try:
                return cur.fetchall()
            except Exception:
                return []

    @property
    def instance(self):
        return self.running.instance


def odbc_string(host: str, port: int, user: str, password: str, database: str = "master") -> str:
    return (f"DRIVER={{FreeTDS}};SERVER={host};PORT={port};UID={user};PWD={{{password}}};"
            f"DATABASE={database};TDS_Version=7.4;")


class Lab:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.instances: dict[str, LabHandle] = {}

    def start(self, name: str, host: str | None = None, port: int = 1433) -> LabHandle:
        from mirrorkit_lab.process import RunningInstance
        host = host or next_address()
        running = RunningInstance(self.state_dir, name, host, port, SA_PASSWORD)
        running.start()
        handle = LabHandle(name, host, port, running, self.state_dir)
        self.instances[name] = handle
        return handle

    def restart(self, name: str) -> LabHandle:
        old = self.instances[name]
        old.running.stop()
        return self.start(name, old.host, old.port)

    def stop_all(self) -> None:
        for h in self.instances.values():
            try:
                h.running.stop()
            except Exception:
                pass

    def __getitem__(self, name: str) -> LabHandle:
        return self.instances[name]


@pytest.fixture
def lab(tmp_path) -> Callable[..., Lab]:
    labs: list[Lab] = []

    def make(*names: str) -> Lab:
        lab_ = Lab(tmp_path / f"lab{len(labs)}")
        labs.append(lab_)
        for n in names:
            lab_.start(n)
        return lab_
    yield make
    for l_ in labs:
        l_.stop_all()
