"""Validating a JobChange into a Job: the one way `add`, `edit`, `apply` and `import crontab`
make or change a job.

Only the fields given are looked at: an edit starts from the existing job and changes what
was asked. Every field is validated here, and a schedule by computing a fire time. Errors
name the command line's options (`--exec`, `--header` ...), as the contract's messages do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from jobctl import policies, schedule
from jobctl.errors import InvalidInput
from jobctl.jobs import (
    ACTION_FIELDS,
    compute_next_run,
    validate_name,
    validate_queue,
    validate_state,
    validate_url,
)
from jobctl.models import (
    ActionKind,
    AgentSpec,
    ExecSpec,
    HttpSpec,
    Job,
    JobChange,
    JobState,
    NotifyDict,
    NotifyTarget,
    Policies,
    ScheduleKind,
    Spec,
)
from jobctl.spec_changes import agent_spec, choose_one, exec_spec, given, http_spec
from jobctl.timeutil import format_duration, get_zone, local_zone_name, parse_time


def _action_kind(change: JobChange, existing: Job | None) -> str:
    chosen = choose_one(change, ("url", "agent", "team", "command"), "action")
    if chosen is None:
        if existing is None:
            raise InvalidInput(
                "a job needs an action: --url URL, --agent AGENT --prompt TEXT, --team TEAM "
                "--prompt TEXT, or --exec CMD"
            )
        return existing.action
    return {"url": "http", "agent": "agent", "team": "agent", "command": "exec"}[chosen]


def _build_spec(kind: str, change: JobChange, existing: Job | None) -> Spec:
    """The job's action: the existing spec (when it is of this kind) with the change laid over."""
    for key, (owner, flag) in ACTION_FIELDS.items():
        if given(getattr(change, key)) and owner != kind:
            raise InvalidInput(f"{flag} applies to {owner} jobs only, and this is a {kind} job")
    old = existing.spec if existing is not None else None
    if kind == ActionKind.HTTP:
        return http_spec(change, old if isinstance(old, HttpSpec) else None)
    if kind == ActionKind.AGENT:
        return agent_spec(change, old if isinstance(old, AgentSpec) else None)
    return exec_spec(change, old if isinstance(old, ExecSpec) else None)


def _schedule_kind(
    change: JobChange,
    existing: Job | None,
    zone_name: str,
    now: datetime,
    *,
    allow_past: bool,
) -> tuple[ScheduleKind, str | None, bool]:
    """The schedule kind, its stored schedule text, and whether it changed."""
    chosen = choose_one(change, ("cron", "every", "at", "manual"), "trigger")
    if change.offset == "" and existing is not None and chosen != "every":
        # '' clears the offset: an every-job keeps its interval, any other has none to clear
        if existing.schedule_kind != ScheduleKind.EVERY or chosen is not None:
            return _schedule_kind(
                replace(change, offset=None), existing, zone_name, now, allow_past=allow_past
            )
        every_text = (existing.schedule or "").split("+", 1)[0]
        return ScheduleKind.EVERY, _every_text(every_text), True
    if given(change.offset) and chosen != "every":
        if existing is None or existing.schedule_kind != ScheduleKind.EVERY or chosen is not None:
            raise InvalidInput("--offset goes with --every")
    zone = get_zone(zone_name)
    if chosen is None:
        if existing is None:
            raise InvalidInput(
                "a job needs a trigger: --cron EXPR, --every DURATION, --at TIME or --manual"
            )
        if existing.schedule_kind == ScheduleKind.EVERY and given(change.offset):
            every_text = (existing.schedule or "").split("+", 1)[0]
            return ScheduleKind.EVERY, _every_text(f"{every_text}+{change.offset}"), True
        return existing.schedule_kind, existing.schedule, False
    if chosen == "manual":
        return ScheduleKind.MANUAL, None, True
    if chosen == "cron":
        cron = change.cron or ""
        schedule.CronSchedule(cron, zone)
        return ScheduleKind.CRON, " ".join(cron.split()), True
    if chosen == "every":
        text = change.every or ""
        if change.offset == "":  # cleared
            return ScheduleKind.EVERY, _every_text(text), True
        if given(change.offset):
            text = f"{text}+{change.offset}"
        elif (
            existing is not None
            and existing.schedule_kind == ScheduleKind.EVERY
            and "+" in (existing.schedule or "")
        ):
            # the stored offset as a duration: it may be in ms, which an interval may not
            _, kept = schedule.parse_every(existing.schedule or "")
            every, _ = schedule.parse_every(text)
            if kept >= every:
                raise InvalidInput(
                    f"the job's --offset {format_duration(kept)} is not shorter than --every "
                    f"{change.every}: give a new --offset too (--offset 0s for none)"
                )
            return ScheduleKind.EVERY, schedule.format_every(every, kept), True
        return ScheduleKind.EVERY, _every_text(text), True
    at = parse_time(change.at or "", zone, what="--at")
    if at <= now and not allow_past:
        raise InvalidInput(f"invalid --at {change.at!r}: that time has passed")
    return ScheduleKind.ONCE, at.isoformat(), True


def _every_text(text: str) -> str:
    every, offset = schedule.parse_every(text)
    return schedule.format_every(every, offset)


def build_job(
    change: JobChange,
    *,
    existing: Job | None,
    now: datetime,
    allow_past: bool = False,
) -> Job:
    """Validate `change` (the fields given) into a new job or an edited copy of `existing`."""
    kind = _action_kind(change, existing)
    spec = _build_spec(kind, change, existing)
    if change.timezone:
        zone_name = get_zone(change.timezone).key
    else:
        zone_name = existing.timezone if existing is not None else local_zone_name()
    kind_of_schedule, schedule_text, timing_changed = _schedule_kind(
        change, existing, zone_name, now, allow_past=allow_past
    )
    stored_policies = existing.policies.to_dict() if existing is not None else {}
    for name in policies.POLICY_NAMES:
        if change.policies.get(name) is not None:
            value = policies.parse_policy(name, change.policies[name])
            if value is None:
                stored_policies.pop(name, None)
            else:
                stored_policies[name] = value
    if change.notify is not None:
        targets = _notify_targets(change.notify)
        if targets:
            stored_policies["notify"] = targets
        else:
            stored_policies.pop("notify", None)
    if stored_policies.get("alert_if_no_success") and not stored_policies.get("notify"):
        raise InvalidInput("--alert-if-no-success needs a --notify-on URL to send the alert to")
    if existing is None:
        job = Job(
            name=validate_name(change.name or ""),
            spec=spec,
            schedule_kind=kind_of_schedule,
            schedule=schedule_text,
            timezone=zone_name,
            policies=Policies.from_dict(stored_policies),
        )
    else:
        job = replace(
            existing,
            spec=spec,
            schedule_kind=kind_of_schedule,
            schedule=schedule_text,
            timezone=zone_name,
            policies=Policies.from_dict(stored_policies),
        )
        if change.new_name is not None:  # '' is refused: a job needs a name
            job.name = validate_name(change.new_name)
    if change.description is not None:
        job.description = change.description
    if change.queue is not None:
        job.queue = validate_queue(change.queue)
    if change.state:
        job.state = validate_state(change.state)
        if job.state != JobState.PAUSED:
            job.paused_reason = None
    schedule_changed = timing_changed or (existing is not None and existing.timezone != zone_name)
    if existing is not None and schedule_changed and job.state == JobState.COMPLETED:
        job.state = JobState.ENABLED
    if existing is None or schedule_changed or job.state != existing.state:
        job.next_run_at = compute_next_run(job, now, validate=job.state != JobState.COMPLETED)
        job.last_slot_at = None if schedule_changed else job.last_slot_at
    return job


def _notify_targets(targets: Iterable[NotifyTarget]) -> list[NotifyDict]:
    """The targets validated; one with an empty URL clears the list."""
    checked: list[NotifyDict] = []
    for target in targets:
        if not target.url:
            return []
        if target.on not in policies.NOTIFY_WHEN:
            raise InvalidInput(
                f"invalid --notify-on {target.on!r}: choose failure, success or always"
            )
        checked.append({"on": target.on, "url": validate_url(target.url, what="--notify-on URL")})
    return checked


def parse_after(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`--after JOB[:succeeded|failed|finished]` (default succeeded)."""
    parsed = []
    for item in items:
        if not item:
            continue
        name, _, when = item.partition(":")
        when = when or "succeeded"
        if when not in ("succeeded", "failed", "finished"):
            raise InvalidInput(
                f"invalid --after {item!r}: use JOB, JOB:succeeded, JOB:failed or JOB:finished"
            )
        parsed.append((validate_name(name), when))
    return tuple(parsed)
