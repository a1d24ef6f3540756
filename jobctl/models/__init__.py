"""The words jobctl is built from, as types: one word per idea.

- A job's **schedule kind** says how its slots are computed (cron, every, once, manual):
  `Job.schedule_kind`, which the database column and the contract's JSON call `trigger`;
  its **schedule** is the text it was given (`*/5 * * * *`, `10m`, a time), and its
  **timetable** is the `schedule.Schedule` object built from the two that gives the next
  slot (`job.build_schedule()`).
- A **plan** is only the preview of an `apply` or an `import crontab`: what would be added,
  changed and removed.
- A run's **trigger** says why that run started (a schedule slot, a person, a webhook ...).
- A run's **status** is where it is in its life: queued or running while in flight, then one
  terminal status.

Every enum is a `StrEnum`, so a member is the very text stored in the database and printed in
JSON: `RunStatus.FAILED == "failed"`. The dataclasses are what the store returns.

The names live in modules by concern (words, runs, policies, specs, jobs, agents); every one
is imported from here: `from jobctl.models import Job`.
"""

from __future__ import annotations

from jobctl.models.agents import (
    Agent as Agent,
)
from jobctl.models.agents import (
    AgentChange as AgentChange,
)
from jobctl.models.agents import (
    StoredAgent as StoredAgent,
)
from jobctl.models.agents import (
    TokenUse as TokenUse,
)
from jobctl.models.fleet import (
    DaemonEntry as DaemonEntry,
)
from jobctl.models.fleet import (
    OpenMiss as OpenMiss,
)
from jobctl.models.jobs import (
    DEFAULT_QUEUE as DEFAULT_QUEUE,
)
from jobctl.models.jobs import (
    Job as Job,
)
from jobctl.models.jobs import (
    JobChange as JobChange,
)
from jobctl.models.jobs import (
    PolicyInput as PolicyInput,
)
from jobctl.models.jobs import (
    Row as Row,
)
from jobctl.models.jobs import (
    StoredJob as StoredJob,
)
from jobctl.models.live import (
    Event as Event,
)
from jobctl.models.live import (
    OutputPiece as OutputPiece,
)
from jobctl.models.policies import (
    DEFAULT_TIMEOUTS as DEFAULT_TIMEOUTS,
)
from jobctl.models.policies import (
    DEFAULTS as DEFAULTS,
)
from jobctl.models.policies import (
    POLICY_NAMES as POLICY_NAMES,
)
from jobctl.models.policies import (
    EffectivePolicies as EffectivePolicies,
)
from jobctl.models.policies import (
    EffectivePoliciesDict as EffectivePoliciesDict,
)
from jobctl.models.policies import (
    NotifyDict as NotifyDict,
)
from jobctl.models.policies import (
    NotifyTarget as NotifyTarget,
)
from jobctl.models.policies import (
    Policies as Policies,
)
from jobctl.models.policies import (
    PolicyValue as PolicyValue,
)
from jobctl.models.runs import (
    HOST as HOST,
)
from jobctl.models.runs import (
    DaemonRow as DaemonRow,
)
from jobctl.models.runs import (
    FinishedCount as FinishedCount,
)
from jobctl.models.runs import (
    JobAdvance as JobAdvance,
)
from jobctl.models.runs import (
    NewRun as NewRun,
)
from jobctl.models.runs import (
    Owner as Owner,
)
from jobctl.models.runs import (
    QueuedRun as QueuedRun,
)
from jobctl.models.runs import (
    RetentionRule as RetentionRule,
)
from jobctl.models.runs import (
    Run as Run,
)
from jobctl.models.runs import (
    RunExecuted as RunExecuted,
)
from jobctl.models.runs import (
    RunSelection as RunSelection,
)
from jobctl.models.runs import (
    UnreadableJob as UnreadableJob,
)
from jobctl.models.specs import (
    SPEC_TYPES as SPEC_TYPES,
)
from jobctl.models.specs import (
    AgentSpec as AgentSpec,
)
from jobctl.models.specs import (
    AgentSpecDict as AgentSpecDict,
)
from jobctl.models.specs import (
    ExecSpec as ExecSpec,
)
from jobctl.models.specs import (
    ExecSpecDict as ExecSpecDict,
)
from jobctl.models.specs import (
    HttpSpec as HttpSpec,
)
from jobctl.models.specs import (
    HttpSpecDict as HttpSpecDict,
)
from jobctl.models.specs import (
    Spec as Spec,
)
from jobctl.models.specs import (
    SpecDict as SpecDict,
)
from jobctl.models.specs import (
    spec_from_dict as spec_from_dict,
)
from jobctl.models.teams import (
    Member as Member,
)
from jobctl.models.teams import (
    MemberDict as MemberDict,
)
from jobctl.models.teams import (
    Team as Team,
)
from jobctl.models.words import (
    EXECUTED as EXECUTED,
)
from jobctl.models.words import (
    FAILURES as FAILURES,
)
from jobctl.models.words import (
    IN_FLIGHT as IN_FLIGHT,
)
from jobctl.models.words import (
    ActionKind as ActionKind,
)
from jobctl.models.words import (
    Catchup as Catchup,
)
from jobctl.models.words import (
    EventType as EventType,
)
from jobctl.models.words import (
    JobState as JobState,
)
from jobctl.models.words import (
    OutputStream as OutputStream,
)
from jobctl.models.words import (
    Overlap as Overlap,
)
from jobctl.models.words import (
    RunStatus as RunStatus,
)
from jobctl.models.words import (
    RunTrigger as RunTrigger,
)
from jobctl.models.words import (
    ScheduleKind as ScheduleKind,
)
