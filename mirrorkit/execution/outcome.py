"""How `mirrorkit run` and its steps end: the exit codes and the step statuses.

The manifest, the notebooks' metadata and the report write them as their plain values (0, "ok", …):
both enums are those values, so they compare equal to what a run folder holds and serialize to it.
"""
from __future__ import annotations

from enum import Enum, IntEnum


class ExitCode(IntEnum):
    OK = 0
    STEP_FAILED = 1              # including a verify FAIL
    INVALID_PARAMETERS = 2       # nothing was executed
    SECRET_FOUND = 3             # a secret value is in a record: the run is not sealed
    STEP_TIMED_OUT = 4
    KERNEL_DIED = 5
    INTERRUPTED = 130            # 128 + SIGINT, as shells report Ctrl-C


class StepStatus(str, Enum):
    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    KERNEL_DIED = "kernel_died"
    INTERRUPTED = "interrupted"
    RUNNER_ERROR = "runner_error"
    SKIPPED = "skipped"          # not started: the run stopped before it
    PENDING = "pending"

    # the value in messages too (Python 3.11 formats a str mixin as "StepStatus.OK")
    __str__ = str.__str__
    __format__ = str.__format__


#: A run's status is its first unsuccessful step's, or one of these, which belong to the run as a whole.
RUN_INVALID_PARAMETERS = "invalid_parameters"
RUN_SECRET_FOUND = "secret_found"
