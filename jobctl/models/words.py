"""The words jobctl is built from, as enums: one word per idea (see jobctl.models)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    MISSED = "missed"
    INTERRUPTED = "interrupted"

    @property
    def in_flight(self) -> bool:
        return self in IN_FLIGHT

    @property
    def executed(self) -> bool:
        """The run did execute (it counts in `runs_total`)."""
        return self in EXECUTED

    @property
    def failure(self) -> bool:
        """The run counts in `runs_failed`."""
        return self in FAILURES


IN_FLIGHT = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
EXECUTED = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED}
)
FAILURES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED})


class RunTrigger(StrEnum):
    """Why a run started."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    WEBHOOK = "webhook"
    RETRY = "retry"
    CATCHUP = "catchup"
    CHAIN = "chain"


class ScheduleKind(StrEnum):
    """How a job's slots are computed (`trigger` in a job's JSON, as the contract names it)."""

    CRON = "cron"
    EVERY = "every"
    ONCE = "once"
    MANUAL = "manual"


class ActionKind(StrEnum):
    """What a run does."""

    HTTP = "http"
    AGENT = "agent"
    EXEC = "exec"


class JobState(StrEnum):
    ENABLED = "enabled"
    PAUSED = "paused"
    COMPLETED = "completed"


class Overlap(StrEnum):
    """What a slot does while a run of the same job is in flight."""

    SKIP = "skip"
    QUEUE = "queue"
    ALLOW = "allow"


class Catchup(StrEnum):
    """What happens to slots missed while no daemon was watching."""

    LATEST = "latest"
    SKIP = "skip"
    ALL = "all"
