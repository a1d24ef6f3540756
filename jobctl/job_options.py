"""Building a Job from the command line's options (`add`, `edit`, a jobs file, a crontab).

Only the options given are looked at: an edit starts from the existing job and changes what
was asked. Every field is validated here, and a schedule by computing a fire time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from jobctl import policies, schedule
from jobctl.errors import InvalidInput
from jobctl.jobs import (
    ACTION_FIELDS,
    METHODS,
    compute_next_run,
    parse_env_pair,
    parse_header,
    validate_expect,
    validate_name,
    validate_state,
    validate_url,
)
from jobctl.models import Job, JobState, Policies, ScheduleKind, Spec, spec_from_dict
from jobctl.timeutil import format_duration, get_zone, local_zone_name, parse_time


def _given(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key)
    return value is not None and value != () and value is not False


def _choose_one(options: Mapping[str, Any], keys: Iterable[str], what: str) -> str | None:
    chosen = [key for key in keys if _given(options, key)]
    if len(chosen) > 1:
        flags = " and ".join("--" + key.replace("_", "-") for key in chosen)
        raise InvalidInput(f"{flags} cannot be combined: a job has one {what}")
    return chosen[0] if chosen else None


def _action_kind(options: Mapping[str, Any], existing: Job | None) -> str:
    chosen = _choose_one(options, ("url", "agent", "exec"), "action")
    if chosen is None:
        if existing is None:
            raise InvalidInput(
                "a job needs an action: --url URL, --agent AGENT --prompt TEXT, or --exec CMD"
            )
        return existing.action
    return "http" if chosen == "url" else chosen


def _build_spec(kind: str, options: Mapping[str, Any], existing: Job | None) -> Spec:
    return spec_from_dict(kind, _build_spec_fields(kind, options, existing))


def _build_spec_fields(
    kind: str, options: Mapping[str, Any], existing: Job | None
) -> dict[str, Any]:
    for key, owner in ACTION_FIELDS.items():
        if _given(options, key) and owner != kind:
            flag = "--" + key.replace("_", "-")
            raise InvalidInput(f"{flag} applies to {owner} jobs only, and this is a {kind} job")
    spec = existing.spec.to_dict() if existing is not None and existing.action == kind else {}
    if kind == "http":
        return _build_http_spec(spec, options)
    if kind == "agent":
        if _given(options, "agent"):
            spec["agent"] = options["agent"]
        if _given(options, "prompt"):
            spec["prompt"] = options["prompt"]
        if not str(spec.get("prompt") or "").strip():
            raise InvalidInput("an agent job needs --prompt TEXT (or @FILE)")
        if options.get("deliver") is not None:
            deliver = options["deliver"]
            spec["deliver"] = validate_url(deliver, what="--deliver") if deliver else None
        spec.setdefault("deliver", None)
        return spec
    if _given(options, "exec"):
        spec["command"] = options["exec"]
    if options.get("shell") is not None:
        spec["shell"] = bool(options["shell"])
    spec.setdefault("shell", True)  # through /bin/sh -c, as cron runs a command line
    if not str(spec.get("command", "")).strip():
        raise InvalidInput("invalid --exec '': give the command to run")
    _check_quotes(spec["command"], shell=spec["shell"])
    if options.get("cwd") is not None:
        spec["cwd"] = (
            os.path.abspath(os.path.expanduser(options["cwd"])) if options["cwd"] else None
        )
    spec.setdefault("cwd", None)
    if options.get("env") is not None:
        spec["env"] = dict(parse_env_pair(item) for item in options["env"] if item)
    spec.setdefault("env", {})
    return spec


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


def _build_http_spec(spec: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    if _given(options, "url"):
        spec["url"] = validate_url(options["url"])
    if options.get("header") is not None:
        spec["headers"] = dict(parse_header(item) for item in options["header"] if item)
    headers: dict[str, str] = dict(spec.get("headers") or {})
    body_given = _choose_one(options, ("body", "json_body"), "body")
    if body_given == "json_body":
        text = options["json_body"]
        try:
            json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"invalid --json-body: {exc}") from None
        spec["body"] = text
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    elif body_given == "body" or options.get("body") == "":
        spec["body"] = options["body"] or None
    spec["headers"] = headers
    spec.setdefault("body", None)
    if options.get("method"):
        method = str(options["method"]).upper()
        if method not in METHODS:
            raise InvalidInput(
                f"invalid --method {options['method']!r}: choose one of {', '.join(METHODS)}"
            )
        spec["method"] = method
    elif "method" not in spec or (body_given and spec["method"] in ("GET", "POST")):
        # GET without a body, POST with one, unless a method was chosen
        spec["method"] = "POST" if spec["body"] is not None else "GET"
    if options.get("expect"):
        spec["expect"] = validate_expect(options["expect"])
    spec.setdefault("expect", "2xx")
    if options.get("forward_payload") is not None:
        spec["forward_payload"] = bool(options["forward_payload"])
        if spec["forward_payload"] and not options.get("method") and spec["method"] == "GET":
            spec["method"] = "POST"  # a webhook's body is sent on, so it needs a method with one
    return spec


def _trigger(
    options: Mapping[str, Any],
    existing: Job | None,
    zone_name: str,
    now: datetime,
    *,
    allow_past: bool,
) -> tuple[str, str | None, bool]:
    """The trigger kind, its stored schedule text, and whether it changed."""
    chosen = _choose_one(options, ("cron", "every", "at", "manual"), "trigger")
    if options.get("offset") == "" and existing is not None and chosen != "every":
        # '' clears the offset: an every-job keeps its interval, any other has none to clear
        if existing.trigger != ScheduleKind.EVERY or chosen is not None:
            return _trigger(
                {**options, "offset": None}, existing, zone_name, now, allow_past=allow_past
            )
        every_text = (existing.schedule or "").split("+", 1)[0]
        return "every", _every_text(every_text), True
    if _given(options, "offset") and chosen != "every":
        if existing is None or existing.trigger != ScheduleKind.EVERY or chosen is not None:
            raise InvalidInput("--offset goes with --every")
    zone = get_zone(zone_name)
    if chosen is None:
        if existing is None:
            raise InvalidInput(
                "a job needs a trigger: --cron EXPR, --every DURATION, --at TIME or --manual"
            )
        if existing.trigger == ScheduleKind.EVERY and _given(options, "offset"):
            every_text = (existing.schedule or "").split("+", 1)[0]
            return "every", _every_text(f"{every_text}+{options['offset']}"), True
        return existing.trigger, existing.schedule, False
    if chosen == "manual":
        return "manual", None, True
    if chosen == "cron":
        schedule.CronSchedule(options["cron"], zone)
        return "cron", " ".join(str(options["cron"]).split()), True
    if chosen == "every":
        text = str(options["every"])
        if options.get("offset") == "":  # cleared
            return "every", _every_text(text), True
        if _given(options, "offset"):
            text = f"{text}+{options['offset']}"
        elif (
            existing is not None
            and existing.trigger == ScheduleKind.EVERY
            and "+" in (existing.schedule or "")
        ):
            # the stored offset as a duration: it may be in ms, which an interval may not
            _, kept = schedule.parse_every(existing.schedule or "")
            every, _ = schedule.parse_every(text)
            if kept >= every:
                raise InvalidInput(
                    f"the job's --offset {format_duration(kept)} is not shorter than --every "
                    f"{options['every']}: give a new --offset too (--offset 0s for none)"
                )
            return "every", schedule.format_every(every, kept), True
        return "every", _every_text(text), True
    at = parse_time(str(options["at"]), zone, what="--at")
    if at <= now and not allow_past:
        raise InvalidInput(f"invalid --at {options['at']!r}: that time has passed")
    return "once", at.isoformat(), True


def _every_text(text: str) -> str:
    every, offset = schedule.parse_every(text)
    return schedule.format_every(every, offset)


def build_job(
    options: Mapping[str, Any],
    *,
    existing: Job | None,
    now: datetime,
    allow_past: bool = False,
) -> Job:
    """Validate `options` (only those given) into a new job or an edited copy of `existing`."""
    kind = _action_kind(options, existing)
    spec = _build_spec(kind, options, existing)
    if options.get("tz"):
        zone_name = get_zone(str(options["tz"])).key
    else:
        zone_name = existing.timezone if existing is not None else local_zone_name()
    trigger, schedule_text, trigger_changed = _trigger(
        options, existing, zone_name, now, allow_past=allow_past
    )
    stored_policies = existing.policies.to_dict() if existing is not None else {}
    for name in policies.POLICY_NAMES:
        if name in options and options[name] is not None:
            value = policies.parse_policy(name, options[name])
            if value is None:
                stored_policies.pop(name, None)
            else:
                stored_policies[name] = value
    if options.get("notify_on") is not None:
        targets = _notify_targets(options["notify_on"])
        if targets:
            stored_policies["notify"] = targets
        else:
            stored_policies.pop("notify", None)
    if stored_policies.get("alert_if_no_success") and not stored_policies.get("notify"):
        raise InvalidInput("--alert-if-no-success needs a --notify-on URL to send the alert to")
    if existing is None:
        job = Job(
            name=validate_name(str(options.get("name") or "")),
            spec=spec,
            trigger=trigger,
            schedule=schedule_text,
            timezone=zone_name,
            policies=Policies.from_dict(stored_policies),
        )
    else:
        job = replace(
            existing,
            spec=spec,
            trigger=trigger,
            schedule=schedule_text,
            timezone=zone_name,
            policies=Policies.from_dict(stored_policies),
        )
        if options.get("new_name") is not None:  # '' is refused: a job needs a name
            job.name = validate_name(str(options["new_name"]))
    if options.get("description") is not None:
        job.description = str(options["description"])
    if options.get("state"):
        job.state = validate_state(str(options["state"]))
        if job.state != JobState.PAUSED:
            job.paused_reason = None
    schedule_changed = trigger_changed or (existing is not None and existing.timezone != zone_name)
    if existing is not None and schedule_changed and job.state == JobState.COMPLETED:
        job.state = JobState.ENABLED
    if existing is None or schedule_changed or job.state != existing.state:
        job.next_run_at = compute_next_run(job, now, validate=job.state != JobState.COMPLETED)
        job.last_slot_at = None if schedule_changed else job.last_slot_at
    return job


def _notify_targets(pairs: Iterable[Any]) -> list[dict[str, str]]:
    """`--notify-on WHEN URL` pairs; an empty URL clears the list."""
    targets = []
    for when, url in pairs:
        if not url:
            return []
        if when not in policies.NOTIFY_WHEN:
            raise InvalidInput(f"invalid --notify-on {when!r}: choose failure, success or always")
        targets.append({"on": when, "url": validate_url(url, what="--notify-on URL")})
    return targets


def parse_after(items: Iterable[str]) -> list[tuple[str, str]]:
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
    return parsed
