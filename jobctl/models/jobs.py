"""Jobs: the stored job, its stored row left as text, and a change asked for."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from jobctl import schedule
from jobctl.models.policies import EffectivePolicies, NotifyTarget, Policies
from jobctl.models.specs import Spec, spec_from_dict
from jobctl.models.words import ActionKind, JobState, ScheduleKind
from jobctl.schedule import Schedule
from jobctl.timeutil import from_db

# The queue a job is on unless it says otherwise (`--queue`); daemons fire only their queues.
DEFAULT_QUEUE = "default"


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


class Row(Protocol):
    """A stored row read by column name (what the store hands `Job.from_row`)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass
class Job:
    """A stored job: its action (`spec`), schedule and policies, state and counters.

    `schedule_kind` is how its slots are computed; the database column and the contract's
    JSON call it `trigger` (a run's `trigger`, RunTrigger, is why that run started).
    """

    name: str
    spec: Spec
    schedule_kind: ScheduleKind
    schedule: str | None
    timezone: str
    description: str = ""
    queue: str = DEFAULT_QUEUE
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
        return cls(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            queue=row["queue"],
            state=row["state"],
            paused_reason=row["paused_reason"],
            spec=_stored_spec(row["action"], row["spec"]),
            schedule_kind=ScheduleKind(row["trigger"]),
            schedule=row["schedule"],
            timezone=row["timezone"],
            policies=_stored_policies(row["policies"]),
            next_run_at=_stored_time(row["next_run_at"]),
            last_slot_at=_stored_time(row["last_slot_at"]),
            consecutive_failures=row["consecutive_failures"],
            runs_total=row["runs_total"],
            runs_succeeded=row["runs_succeeded"],
            runs_failed=row["runs_failed"],
            runs_skipped=row["runs_skipped"],
            runs_missed=row["runs_missed"],
            last_run_at=_stored_time(row["last_run_at"]),
            last_status=row["last_status"],
            last_success_at=_stored_time(row["last_success_at"]),
            created_at=_stored_time(row["created_at"]),
            updated_at=_stored_time(row["updated_at"]),
        )

    @property
    def action(self) -> ActionKind:
        """What a run of this job does: its spec's kind."""
        return self.spec.kind

    def effective_policies(self) -> EffectivePolicies:
        # Computed once per Job object (the daemon asks several times per fire)
        if self._effective is None:
            self._effective = _effective(self.policies, self.action, self.agent_timeout)
        return self._effective

    def use_agent_timeout(self, seconds: float | None) -> None:
        self.agent_timeout = seconds
        self._effective = None

    def build_schedule(self) -> Schedule | None:
        return schedule.build_schedule(self.schedule_kind, self.schedule, self.timezone)


# The daemon reads every due job's row each second: what parses its text is cached on that
# text (the parsed values are frozen, so jobs with the same text share them).
@lru_cache(maxsize=4096)
def _stored_spec(action: str, text: str) -> Spec:
    return spec_from_dict(action, json.loads(text))


@lru_cache(maxsize=4096)
def _stored_policies(text: str) -> Policies:
    return Policies.from_dict(json.loads(text))


# Every claim reads its job anew: jobs with the same policies share their effective values
# (frozen), computed once.
@lru_cache(maxsize=4096)
def _effective(
    policies: Policies, action: ActionKind, agent_timeout: float | None
) -> EffectivePolicies:
    return policies.effective(action, agent_timeout=agent_timeout)


@lru_cache(maxsize=8192)
def _stored_time(text: str | None) -> datetime | None:
    return from_db(text) if text else None


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
    queue: str | None = None
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
    # Assertions on the response (jobctl.http_checks); '' or () clears one.
    expect_body: str | None = None
    expect_json: tuple[str, ...] | None = None
    expect_headers: tuple[str, ...] | None = None
    max_duration: str | None = None
    max_redirects: str | int | None = None  # '' clears (back to the default, 10)
    timings: bool | None = None
    agent: str | None = None
    team: str | None = None  # instead of agent: the team that answers the prompt in turn
    prompt: str | None = None
    deliver: str | None = None
    model: str | None = None
    max_tokens: str | int | None = None
    budget_tokens: str | int | None = None
    budget_per: str | None = None
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
