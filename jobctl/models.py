"""The words jobctl is built from, as types: one word per idea.

- A job's **schedule kind** says how its slots are computed (cron, every, once, manual).
- A run's **trigger** says why that run started (a schedule slot, a person, a webhook ...).
- A run's **status** is where it is in its life: queued or running while in flight, then one
  terminal status.

Every enum is a `StrEnum`, so a member is the very text stored in the database and printed in
JSON: `RunStatus.FAILED == "failed"`. The dataclasses are what the store returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class Run:
    """One run row: a fire of a job, from the moment it was claimed or queued.

    Times are aware UTC datetimes; `snapshot` and `details` are the stored JSON text.
    `job` is the job's name when the row was read together with its job.
    """

    id: int
    job_id: int
    trigger: RunTrigger
    status: RunStatus
    attempt: int
    scheduled_for: datetime
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    due_at: datetime | None = None
    duration_ms: int | None = None
    http_status: int | None = None
    exit_code: int | None = None
    error: str | None = None
    output: str | None = None
    snapshot: str | None = None
    details: str | None = None
    owner_pid: int | None = None
    owner_host: str | None = None
    caused_by: int | None = None
    pgid: int | None = None
    pgid_started: int | None = None
    job: str | None = None


@dataclass(frozen=True)
class DaemonRow:
    """The last daemon's heartbeat on a database (one row; `stopped_at` once it stopped)."""

    pid: int
    host: str
    started_at: datetime
    last_tick_at: datetime
    listen: str | None = None
    stopped_at: datetime | None = None
    log_file: str | None = None


@dataclass
class RunSelection:
    """Which runs a listing wants, newest first: every field narrows it; `limit` 0 is all."""

    job_id: int | None = None
    statuses: Sequence[RunStatus] = ()
    triggers: Sequence[RunTrigger] = ()
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created at or before
    limit: int = 20
    after_id: int | None = None


@dataclass(frozen=True)
class FinishedCount:
    """Runs of one status (of one job, where asked for) that finished in a window;
    `slots` is how many schedule slots they stand for (a `missed` row may stand for several)."""

    status: RunStatus
    job_id: int | None
    runs: int
    slots: int
