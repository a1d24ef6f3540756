"""Runs as the store returns them, the processes that own them, and the daemon's row."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.models.words import RunStatus, RunTrigger

if TYPE_CHECKING:
    from jobctl.models.jobs import Job


@dataclass(frozen=True)
class Run:
    """One run row: a fire of a job, from the moment it was claimed or queued.

    Times are aware UTC datetimes; `snapshot` and `details` are the stored JSON text.
    `job` is the job's name when the row was read together with its job.
    """

    id: int
    job_id: int | None  # None for an ad hoc run (`jobctl run --exec ...`): no job behind it
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
    # An ad hoc run's action, as JSON: {"action": "exec", "spec": {...}} (None for a job's run)
    adhoc: str | None = None
    cancel_requested_at: datetime | None = None  # `runs cancel` asked the owner to stop it
    rerun_of: int | None = None  # the run a `rerun` run repeats


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


@dataclass(frozen=True)
class Owner:
    """The process that runs a fire: orphans are found by checking it still exists."""

    pid: int
    host: str

    @classmethod
    def this_process(cls) -> Owner:
        return cls(os.getpid(), HOST)


# The node name, as socket.gethostname() gives it, without importing socket (10 ms at start-up).
HOST = os.uname().nodename


@dataclass(frozen=True)
class UnreadableJob:
    """A due job whose stored row could not be read: the engine pauses it."""

    id: int
    name: str
    error: Exception


@dataclass(frozen=True)
class QueuedRun:
    """A queued run whose time has come, read together with its job."""

    run_id: int
    trigger: RunTrigger
    attempt: int
    scheduled_for: datetime
    job: Job
    payload: str | None = None
    payload_type: str | None = None


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run row a claim writes: `running` (owned by `owner`), `skipped` (with `error`) or
    `queued` (due at `due_at`)."""

    job_id: int
    trigger: RunTrigger
    status: RunStatus
    scheduled_for: datetime
    attempt: int = 1
    owner: Owner | None = None
    due_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JobAdvance:
    """A claimed job moved on: to `next_run_at` (and `state`, a JobState value) from
    `claimed_next_run_at`, if nobody moved it meanwhile."""

    job_id: int
    claimed_next_run_at: datetime
    next_run_at: datetime | None
    last_slot_at: datetime | None
    state: str


@dataclass(frozen=True, slots=True)
class RunExecuted:
    """A finished run as its job's counters see it (`status` a RunStatus value); `final`:
    no retry follows."""

    job_id: int
    status: str
    started_at: datetime
    final: bool


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
    before_id: int | None = None  # a page's cursor: only runs with a lower id
    adhoc: bool = False  # only ad hoc runs (those with no job)


@dataclass(frozen=True)
class RetentionRule:
    """Which finished runs of one job (None: the ad hoc runs) go: those with an id below
    `below_id` and those created before `created_before` (either may be None)."""

    job_id: int | None
    below_id: int | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class FinishedCount:
    """Runs of one status (of one job, where asked for) that finished in a window;
    `slots` is how many schedule slots they stand for (a `missed` row may stand for several)."""

    status: RunStatus
    job_id: int | None
    runs: int
    slots: int
