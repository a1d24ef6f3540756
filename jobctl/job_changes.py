"""Validating a JobChange into a Job: the one way `add`, `edit`, `apply` and `import crontab`
make or change a job.

Only the fields given are looked at: an edit starts from the existing job and changes what
was asked. Every field is validated here, and a schedule by computing a fire time. Errors
name the command line's options (`--exec`, `--header` ...), as the contract's messages do.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from jobctl import policies, schedule
from jobctl.budgets import budget_period, token_count
from jobctl.errors import InvalidInput
from jobctl.http_checks import changed_checks
from jobctl.jobs import (
    ACTION_FIELDS,
    METHODS,
    check_env,
    check_header,
    compute_next_run,
    validate_expect,
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
from jobctl.timeutil import format_duration, get_zone, local_zone_name, parse_time

# The option that sets each field, for messages (the rest are `--` + the field's name).
_FLAGS = {"command": "--exec", "json_body": "--json-body", "timezone": "--tz"}


def _flag(key: str) -> str:
    return _FLAGS.get(key) or "--" + key.replace("_", "-")


def _given(value: object) -> bool:
    """Given, for the fields a job has one of (a `--no-...` flag chooses nothing)."""
    return value is not None and value is not False


def _choose_one(change: JobChange, keys: Iterable[str], what: str) -> str | None:
    chosen = [key for key in keys if _given(getattr(change, key))]
    if len(chosen) > 1:
        flags = " and ".join(_flag(key) for key in chosen)
        raise InvalidInput(f"{flags} cannot be combined: a job has one {what}")
    return chosen[0] if chosen else None


def _action_kind(change: JobChange, existing: Job | None) -> str:
    chosen = _choose_one(change, ("url", "agent", "team", "command"), "action")
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
        if _given(getattr(change, key)) and owner != kind:
            raise InvalidInput(f"{flag} applies to {owner} jobs only, and this is a {kind} job")
    old = existing.spec if existing is not None else None
    if kind == ActionKind.HTTP:
        return _http_spec(change, old if isinstance(old, HttpSpec) else None)
    if kind == ActionKind.AGENT:
        return _agent_spec(change, old if isinstance(old, AgentSpec) else None)
    return _exec_spec(change, old if isinstance(old, ExecSpec) else None)


def _agent_spec(change: JobChange, old: AgentSpec | None) -> AgentSpec:
    agent = change.agent if change.agent is not None else (old.agent if old else "")
    team = old.team if old else None
    if change.team is not None:
        agent, team = "", change.team
    elif change.agent is not None:
        team = None
    prompt = change.prompt if change.prompt is not None else (old.prompt if old else "")
    if not prompt.strip():
        raise InvalidInput("an agent job needs --prompt TEXT (or @FILE)")
    deliver = old.deliver if old else None
    if change.deliver is not None:
        deliver = validate_url(change.deliver, what="--deliver") if change.deliver else None
    model = old.model if old else None
    if change.model is not None:
        model = change.model.strip() or None
    max_tokens = _kept_count(change.max_tokens, old.max_tokens if old else None, "--max-tokens")
    budget_tokens = _kept_count(
        change.budget_tokens, old.budget_tokens if old else None, "--budget-tokens"
    )
    budget_per = old.budget_per if old else None
    if change.budget_per is not None:
        budget_per = budget_period(change.budget_per) if change.budget_per else None
    if budget_tokens is not None and budget_per is None:
        budget_per = "day"
    if budget_tokens is None:
        budget_per = None
    return AgentSpec(
        agent=agent,
        prompt=prompt,
        deliver=deliver,
        team=team,
        model=model,
        max_tokens=max_tokens,
        budget_tokens=budget_tokens,
        budget_per=budget_per,
    )


def _kept_count(given: str | int | None, old: int | None, what: str) -> int | None:
    """A token count as given ('' clears it), else the one the job had."""
    if given is None:
        return old
    return token_count(given, what)


def _exec_spec(change: JobChange, old: ExecSpec | None) -> ExecSpec:
    command = change.command if change.command is not None else (old.command if old else "")
    # through /bin/sh -c by default, as cron runs a command line
    shell = change.shell if change.shell is not None else (old.shell if old else True)
    if not command.strip():
        raise InvalidInput("invalid --exec '': give the command to run")
    _check_quotes(command, shell=shell)
    cwd = old.cwd if old else None
    if change.cwd is not None:
        cwd = os.path.abspath(os.path.expanduser(change.cwd)) if change.cwd else None
    env = dict(old.env) if old else {}
    if change.env is not None:
        env = dict(check_env(name, value) for name, value in change.env.items())
    return ExecSpec(command=command, cwd=cwd, env=env, shell=shell)


def _check_quotes(command: str, *, shell: bool) -> None:
    """Refuse a command line whose quotes are not closed (sh would refuse it at every run)."""
    try:
        if shell:
            # `#` starts a comment, whose text may hold a lone apostrophe
            list(shlex.shlex(command, posix=True, punctuation_chars=True))
        else:
            shlex.split(command)
    except ValueError as exc:
        problem = str(exc) if not shell else _shell_syntax_error(command)
        if problem:
            raise InvalidInput(f"invalid --exec {command!r}: {problem}") from None


def _shell_syntax_error(command: str) -> str | None:
    """What `sh -n` says about the command, or None when it parses. Only asked when shlex
    failed: its quoting is close to sh's, not equal (`"$(echo "it's")"` is fine in sh)."""
    import subprocess

    try:
        checked = subprocess.run(
            ["/bin/sh", "-n", "-c", command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=10,
        )
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None  # no sh to ask here: the run reports it
    if checked.returncode == 0:
        return None
    lines = checked.stderr.strip().splitlines()
    message = lines[-1] if lines else f"sh -n exit code {checked.returncode}"
    # dash says `sh: 1: Syntax error: ...`, bash `sh: -c: line 1: ...`
    return re.sub(r"^(/bin/)?sh: (-c: )?(line )?\d+: ", "", message)


def _http_spec(change: JobChange, old: HttpSpec | None) -> HttpSpec:
    url = validate_url(change.url) if change.url is not None else (old.url if old else "")
    headers = dict(old.headers) if old else {}
    if change.headers is not None:
        headers = dict(check_header(name, value) for name, value in change.headers.items())
    body = old.body if old else None
    body_given = _choose_one(change, ("body", "json_body"), "body")
    if body_given == "json_body":
        body = change.json_body or ""
        try:
            json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"invalid --json-body: {exc}") from None
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    elif body_given == "body":
        body = change.body or None
    if change.method:
        method = change.method.upper()
        if method not in METHODS:
            raise InvalidInput(
                f"invalid --method {change.method!r}: choose one of {', '.join(METHODS)}"
            )
    elif old is None or (body_given and old.method in ("GET", "POST")):
        # GET without a body, POST with one, unless a method was chosen
        method = "POST" if body is not None else "GET"
    else:
        method = old.method
    expect = validate_expect(change.expect) if change.expect else (old.expect if old else "2xx")
    forward_payload = old.forward_payload if old else None
    if change.forward_payload is not None:
        forward_payload = change.forward_payload
        if forward_payload and not change.method and method == "GET":
            method = "POST"  # a webhook's body is sent on, so it needs a method with one
    return replace(
        changed_checks(change, old),
        url=url,
        method=method,
        headers=headers,
        body=body,
        expect=expect,
        forward_payload=forward_payload,
    )


def _schedule_kind(
    change: JobChange,
    existing: Job | None,
    zone_name: str,
    now: datetime,
    *,
    allow_past: bool,
) -> tuple[ScheduleKind, str | None, bool]:
    """The schedule kind, its stored schedule text, and whether it changed."""
    chosen = _choose_one(change, ("cron", "every", "at", "manual"), "trigger")
    if change.offset == "" and existing is not None and chosen != "every":
        # '' clears the offset: an every-job keeps its interval, any other has none to clear
        if existing.schedule_kind != ScheduleKind.EVERY or chosen is not None:
            return _schedule_kind(
                replace(change, offset=None), existing, zone_name, now, allow_past=allow_past
            )
        every_text = (existing.schedule or "").split("+", 1)[0]
        return ScheduleKind.EVERY, _every_text(every_text), True
    if _given(change.offset) and chosen != "every":
        if existing is None or existing.schedule_kind != ScheduleKind.EVERY or chosen is not None:
            raise InvalidInput("--offset goes with --every")
    zone = get_zone(zone_name)
    if chosen is None:
        if existing is None:
            raise InvalidInput(
                "a job needs a trigger: --cron EXPR, --every DURATION, --at TIME or --manual"
            )
        if existing.schedule_kind == ScheduleKind.EVERY and _given(change.offset):
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
        if _given(change.offset):
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
