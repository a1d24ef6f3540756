"""The words jobctl is built from, as types: one word per idea.

- A job's **schedule kind** says how its slots are computed (cron, every, once, manual).
- A run's **trigger** says why that run started (a schedule slot, a person, a webhook ...).
- A run's **status** is where it is in its life: queued or running while in flight, then one
  terminal status.

Every enum is a `StrEnum`, so a member is the very text stored in the database and printed in
JSON: `RunStatus.FAILED == "failed"`. The dataclasses are what the store returns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from jobctl import schedule
from jobctl.schedule import Schedule
from jobctl.timeutil import from_db


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


@dataclass(frozen=True)
class StoredJob:
    """A job's definition as stored, its JSON (`spec`, `policies`) left as text: what
    `doctor` checks before anything trusts it to parse."""

    name: str
    action: str
    spec: str
    policies: str
    schedule_kind: str
    schedule: str | None
    timezone: str
    state: str


@dataclass(frozen=True)
class StoredAgent:
    """An agent's definition as stored, its `config` JSON left as text (see StoredJob)."""

    name: str
    kind: str
    config: str


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


# ------------------------------------------------------------------------------ policies

DEFAULT_TIMEOUTS = {"http": 30.0, "agent": 600.0, "exec": 3600.0}
POLICY_NAMES = (
    "timeout",
    "retries",
    "backoff",
    "overlap",
    "catchup",
    "catchup_window",
    "jitter",
    "max_failures",
    "keep",
    "keep_for",
    "alert_if_no_success",
)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class NotifyTarget:
    """A URL told how a run ended: `on` is failure, success or always."""

    on: str
    url: str

    def to_dict(self) -> dict[str, str]:
        return {"on": self.on, "url": self.url}


@dataclass(frozen=True)
class EffectivePolicies:
    """Every policy with the value a run obeys; a policy that is off is None."""

    timeout: float
    retries: int
    backoff: float
    overlap: Overlap
    catchup: Catchup
    catchup_window: float
    jitter: float
    max_failures: int | None
    keep: int
    keep_for: float | None
    alert_if_no_success: float | None
    notify: tuple[NotifyTarget, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The contract's `policies` object, keys in POLICY_NAMES order then `notify`."""
        data: dict[str, Any] = {name: getattr(self, name) for name in POLICY_NAMES}
        data["notify"] = [target.to_dict() for target in self.notify]
        return data


@dataclass(frozen=True)
class Policies:
    """The policies a job set; None (or no `notify` target) is "not set": the default applies.

    Durations are seconds, counts whole numbers; the stored form holds only what was set.
    """

    timeout: float | None = None
    retries: int | None = None
    backoff: float | None = None
    overlap: Overlap | None = None
    catchup: Catchup | None = None
    catchup_window: float | None = None
    jitter: float | None = None
    max_failures: int | None = None
    keep: int | None = None
    keep_for: float | None = None
    alert_if_no_success: float | None = None
    notify: tuple[NotifyTarget, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The stored form: only the policies that are set."""
        data: dict[str, Any] = {
            name: getattr(self, name) for name in POLICY_NAMES if getattr(self, name) is not None
        }
        if self.notify:
            data["notify"] = [target.to_dict() for target in self.notify]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policies:
        overlap, catchup = data.get("overlap"), data.get("catchup")
        return cls(
            timeout=_seconds(data.get("timeout")),
            retries=_count(data.get("retries")),
            backoff=_seconds(data.get("backoff")),
            overlap=Overlap(overlap) if overlap is not None else None,
            catchup=Catchup(catchup) if catchup is not None else None,
            catchup_window=_seconds(data.get("catchup_window")),
            jitter=_seconds(data.get("jitter")),
            max_failures=_count(data.get("max_failures")),
            keep=_count(data.get("keep")),
            keep_for=_seconds(data.get("keep_for")),
            alert_if_no_success=_seconds(data.get("alert_if_no_success")),
            notify=tuple(
                NotifyTarget(on=str(item["on"]), url=str(item["url"]))
                for item in data.get("notify") or ()
            ),
        )

    def effective(self, action: str, *, agent_timeout: float | None = None) -> EffectivePolicies:
        """Every policy with its effective value.

        The one place a run's timeout is decided: the job's own, else (for an agent job) the
        agent's `--timeout`, else the action kind's default.
        """
        timeout = DEFAULT_TIMEOUTS[action]
        if action == ActionKind.AGENT and agent_timeout is not None:
            timeout = float(agent_timeout)
        # Written out (no loop over names): the daemon asks once per job it reads.
        return EffectivePolicies(
            timeout=timeout if self.timeout is None else self.timeout,
            retries=0 if self.retries is None else self.retries,
            backoff=10.0 if self.backoff is None else self.backoff,
            overlap=self.overlap or Overlap.SKIP,
            catchup=self.catchup or Catchup.LATEST,
            catchup_window=86400.0 if self.catchup_window is None else self.catchup_window,
            jitter=0.0 if self.jitter is None else self.jitter,
            max_failures=self.max_failures or None,  # 0 is off
            keep=1000 if self.keep is None else self.keep,
            keep_for=self.keep_for,
            alert_if_no_success=self.alert_if_no_success,
            notify=self.notify,
        )

    def notify_targets(self, status: str) -> list[str]:
        """The URLs to tell about a run that ended with `status`."""
        failed = status in FAILURES
        return [
            target.url
            for target in self.notify
            if target.on == "always" or (target.on == "failure") == failed
        ]


# Each policy's default (timeout's depends on the action kind: DEFAULT_TIMEOUTS).
DEFAULTS: dict[str, Any] = {
    name: value
    for name, value in Policies().effective(ActionKind.HTTP).to_dict().items()
    if name not in ("timeout", "notify")
}


# --------------------------------------------------------------------------- action specs


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _text_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


@dataclass(frozen=True)
class HttpSpec:
    """An HTTP request: `method` on `url` with `headers` and `body`; `expect` is the status
    codes that count as success; `forward_payload` sends a webhook's body on (None: never
    set, and so absent from the JSON form)."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expect: str = "2xx"
    forward_payload: bool | None = None

    kind: ClassVar[ActionKind] = ActionKind.HTTP

    def to_dict(self) -> dict[str, Any]:
        """The stored and JSON form, keys in the order every output writes them."""
        data: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "body": self.body,
            "expect": self.expect,
        }
        if self.forward_payload is not None:
            data["forward_payload"] = self.forward_payload
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HttpSpec:
        body = _optional_text(data.get("body"))
        forward = data.get("forward_payload")
        return cls(
            url=_text(data.get("url")),
            method=_text(data.get("method")) or ("POST" if body is not None else "GET"),
            headers=_text_map(data.get("headers")),
            body=body,
            expect=_text(data.get("expect")) or "2xx",
            forward_payload=None if forward is None else bool(forward),
        )


@dataclass(frozen=True)
class ExecSpec:
    """A command: an argv line, or a /bin/sh line when `shell`; run in `cwd` with `env`
    laid over the daemon's environment."""

    command: str
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    shell: bool = False

    kind: ClassVar[ActionKind] = ActionKind.EXEC

    def to_dict(self) -> dict[str, Any]:
        """The stored and JSON form, keys in the order every output writes them."""
        return {
            "command": self.command,
            "cwd": self.cwd,
            "env": dict(self.env),
            "shell": self.shell,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecSpec:
        return cls(
            command=_text(data.get("command")),
            cwd=_optional_text(data.get("cwd")) or None,
            env=_text_map(data.get("env")),
            shell=bool(data.get("shell")),
        )


@dataclass(frozen=True)
class AgentSpec:
    """A prompt for a named agent; its answer is posted to `deliver` when that is set."""

    agent: str
    prompt: str
    deliver: str | None = None

    kind: ClassVar[ActionKind] = ActionKind.AGENT

    def to_dict(self) -> dict[str, Any]:
        """The stored and JSON form, keys in the order every output writes them."""
        return {"agent": self.agent, "prompt": self.prompt, "deliver": self.deliver}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentSpec:
        return cls(
            agent=_text(data.get("agent")),
            prompt=_text(data.get("prompt")),
            deliver=_optional_text(data.get("deliver")) or None,
        )


Spec = HttpSpec | ExecSpec | AgentSpec
SPEC_TYPES: dict[str, type[HttpSpec] | type[ExecSpec] | type[AgentSpec]] = {
    ActionKind.HTTP: HttpSpec,
    ActionKind.EXEC: ExecSpec,
    ActionKind.AGENT: AgentSpec,
}


def spec_from_dict(action: str, data: Mapping[str, Any]) -> Spec:
    """The typed spec of an `action` job from its stored or JSON form."""
    try:
        spec_type = SPEC_TYPES[action]
    except KeyError:
        raise ValueError(f"unknown action kind {action!r}") from None
    return spec_type.from_dict(data)


# --------------------------------------------------------------------------- jobs, agents


class Row(Protocol):
    """A stored row read by column name (what the store hands `Job.from_row`)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass
class Job:
    name: str
    spec: Spec
    trigger: str
    schedule: str | None
    timezone: str
    description: str = ""
    state: str = JobState.ENABLED
    paused_reason: str | None = None
    policies: Policies = field(default_factory=Policies)
    next_run_at: datetime | None = None
    last_slot_at: datetime | None = None
    id: int | None = None
    consecutive_failures: int = 0
    runs_total: int = 0
    runs_succeeded: int = 0
    runs_failed: int = 0
    runs_skipped: int = 0
    runs_missed: int = 0
    last_run_at: datetime | None = None
    last_status: str | None = None
    last_success_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The agent's own --timeout, for an agent job whose agent was looked up (see
    # use_agent_timeout); it is the job's timeout when the job sets none.
    agent_timeout: float | None = field(default=None, repr=False, compare=False)
    _effective: EffectivePolicies | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def from_row(cls, row: Row) -> Job:
        """The job from its stored row (the store calls this)."""

        def when(key: str) -> datetime | None:
            value = row[key]
            return from_db(value) if value else None

        return cls(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            state=row["state"],
            paused_reason=row["paused_reason"],
            spec=spec_from_dict(row["action"], json.loads(row["spec"])),
            trigger=row["trigger"],
            schedule=row["schedule"],
            timezone=row["timezone"],
            policies=Policies.from_dict(json.loads(row["policies"])),
            next_run_at=when("next_run_at"),
            last_slot_at=when("last_slot_at"),
            consecutive_failures=row["consecutive_failures"],
            runs_total=row["runs_total"],
            runs_succeeded=row["runs_succeeded"],
            runs_failed=row["runs_failed"],
            runs_skipped=row["runs_skipped"],
            runs_missed=row["runs_missed"],
            last_run_at=when("last_run_at"),
            last_status=row["last_status"],
            last_success_at=when("last_success_at"),
            created_at=when("created_at"),
            updated_at=when("updated_at"),
        )

    @property
    def action(self) -> ActionKind:
        """What a run of this job does: its spec's kind."""
        return self.spec.kind

    def effective_policies(self) -> EffectivePolicies:
        # Computed once per Job object (the daemon asks several times per fire)
        if self._effective is None:
            self._effective = self.policies.effective(self.action, agent_timeout=self.agent_timeout)
        return self._effective

    def use_agent_timeout(self, seconds: float | None) -> None:
        self.agent_timeout = seconds
        self._effective = None

    def build_schedule(self) -> Schedule | None:
        return schedule.build_schedule(self.trigger, self.schedule, self.timezone)


# A policy's value as given: text ("30s", "3") or, from a document, a number; '' clears it.
PolicyInput = str | int | float


@dataclass(frozen=True)
class JobChange:
    """A new job, or a change to one: what `add`, `edit`, `apply` and `import crontab` ask for.

    Every field left None is "not given": an edit keeps what the job has. An empty value
    clears an optional field, as on the command line: '' for text (`offset`, `cwd`,
    `deliver`, `body` ...), an empty mapping for `headers` and `env`, '' for a policy, a
    `notify` target with an empty URL for the whole list. `jobctl.job_changes.build_job`
    validates a change into a Job; values are as people write them (durations as text,
    the `at` time in the job's zone), already read from `@FILE` where the CLI allows that.
    """

    name: str | None = None
    new_name: str | None = None
    description: str | None = None
    state: str | None = None
    timezone: str | None = None
    # The action: the fields of one kind (url / agent / command chooses it).
    url: str | None = None
    method: str | None = None
    headers: Mapping[str, str] | None = None
    body: str | None = None
    json_body: str | None = None
    expect: str | None = None
    forward_payload: bool | None = None
    agent: str | None = None
    prompt: str | None = None
    deliver: str | None = None
    command: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] | None = None
    shell: bool | None = None
    # The schedule: one of cron, every (with its offset), at or manual.
    cron: str | None = None
    every: str | None = None
    offset: str | None = None
    at: str | None = None
    manual: bool | None = None
    # Policy name (POLICY_NAMES) -> its value as given.
    policies: Mapping[str, PolicyInput] = field(default_factory=dict)
    notify: tuple[NotifyTarget, ...] | None = None
    # (upstream job, succeeded|failed|finished): the jobs this one runs after; () clears.
    after: tuple[tuple[str, str], ...] | None = None


@dataclass
class Agent:
    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int | None = None

    @classmethod
    def from_row(cls, row: Row) -> Agent:
        """The agent from its stored row (the store calls this)."""
        return cls(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            config=json.loads(row["config"]),
            created_at=from_db(row["created_at"]),
            updated_at=from_db(row["updated_at"]),
        )

    @property
    def timeout(self) -> float | None:
        """The agent's own timeout in seconds, if it sets one."""
        value = self.config.get("timeout")
        return float(value) if value is not None else None


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
