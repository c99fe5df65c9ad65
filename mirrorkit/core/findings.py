"""The one finding model of plan and verify: what was found, how bad, and how to fix it.

A remediation is the T-SQL to run on a named instance (built by core.tsql, shown redacted), or the
notebook and target to run, or advice in words when neither applies.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from .tsql import Statement


class Severity(str, Enum):
    PASS = "PASS"
    NOTE = "NOTE"      # worth reading, changes nothing
    WARN = "WARN"      # passes, visibly (e.g. drift the kit leaves alone, an expiry ahead)
    FAIL = "FAIL"      # verify fails; in a plan it blocks the apply

    def __str__(self) -> str:
        return self.value


PASS, NOTE, WARN, FAIL = Severity.PASS, Severity.NOTE, Severity.WARN, Severity.FAIL


@dataclass(frozen=True)
class Remediation:
    advice: str = ""                          # in words; with a statement, what to know before running it
    statement: Optional[Statement] = None     # T-SQL to run on `instance`
    instance: Optional[str] = None
    notebook: Optional[str] = None            # or: the notebook to run with `target`
    target: Optional[str] = None

    @staticmethod
    def sql(statement: Statement, instance: str, advice: str = "") -> "Remediation":
        return Remediation(advice, statement, instance)

    @staticmethod
    def run(notebook: str, target: Optional[str], advice: str = "") -> "Remediation":
        return Remediation(advice or f"run notebooks/{notebook}.ipynb with target {target}", None, None,
                           notebook, target)

    @property
    def text(self) -> str:
        """One line for people: the statement (redacted) and the advice."""
        if self.statement is None:
            return self.advice
        sql = " ".join(line.strip() for line in self.statement.redacted().splitlines())
        return sql + (f"  -- {self.advice}" if self.advice else "")


@dataclass(frozen=True)
class Finding:
    check: str                                # e.g. I04 (instance), P07 (pair), L01 (evidence), O02 (plan)
    instance: str                             # where it was found (for a pair: the acceptor)
    peer: Optional[str]                       # for a pair: the initiator
    status: Severity
    found: str
    fix: Optional[Remediation] = None
    error_number: Optional[int] = None        # the handshake error this predicts
    blocks: bool = False                      # a plan stops here: applying would fail or do harm

    @property
    def remediation(self) -> str:
        return self.fix.text if self.fix else ""

    @property
    def remediation_sql(self) -> Optional[str]:
        return self.fix.statement.redacted() if self.fix and self.fix.statement is not None else None

    @property
    def remediation_instance(self) -> Optional[str]:
        return self.fix.instance if self.fix and self.fix.statement is not None else None

    @property
    def notebook(self) -> Optional[str]:
        return self.fix.notebook if self.fix else None

    @property
    def notebook_target(self) -> Optional[str]:
        return self.fix.target if self.fix else None

    def as_record(self) -> dict:
        return {"check": self.check, "instance": self.instance, "peer": self.peer, "status": self.status.value,
                "found": self.found, "remediation": self.remediation, "remediation_sql": self.remediation_sql,
                "remediation_instance": self.remediation_instance, "notebook": self.notebook,
                "notebook_target": self.notebook_target, "error_number": self.error_number, "blocks": self.blocks}
