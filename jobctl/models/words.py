"""The words jobctl is built from, as enums: one word per idea (see jobctl.models)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # a team's run stopped at an approval point: in flight, no process
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    MISSED = "missed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"  # stopped on request (`runs cancel`): executed, not failed

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


IN_FLIGHT = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING})
EXECUTED = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
        RunStatus.INTERRUPTED,
        RunStatus.CANCELLED,
    }
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
    RERUN = "rerun"  # `runs rerun`: the same job and payload as the run in `rerun_of`


class ScheduleKind(StrEnum):
    """How a job's slots are computed (`trigger` in a job's JSON, as the contract names it)."""

    CRON = "cron"
    EVERY = "every"
    ONCE = "once"
    MANUAL = "manual"


class OutputStream(StrEnum):
    """Which of a run's outputs a piece of it came from, as it was produced."""

    STDOUT = "stdout"  # an exec job's or a command agent's standard output
    STDERR = "stderr"  # ... and its standard error, kept apart
    ANSWER = "answer"  # an agent's answer, token by token where the server streams
    BODY = "body"  # an HTTP response's body


class EventType(StrEnum):
    """What an event in the event stream (`jobctl events`) says happened."""

    RUN_STARTED = "run.started"
    RUN_OUTPUT = "run.output"
    RUN_FINISHED = "run.finished"
    RUN_SKIPPED = "run.skipped"
    RUN_MISSED = "run.missed"
    RUN_WAITING = "run.waiting"
    JOB_ADDED = "job.added"
    JOB_CHANGED = "job.changed"
    JOB_REMOVED = "job.removed"
    DAEMON_STARTED = "daemon.started"
    DAEMON_STOPPED = "daemon.stopped"


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
