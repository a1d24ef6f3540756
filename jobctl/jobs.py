"""Jobs: validating what people ask for, storing it, and reading it back as rows."""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from jobctl import policies, schedule
from jobctl.errors import Failed, InvalidInput, NotFound
from jobctl.models import ActionKind, ScheduleKind
from jobctl.schedule import Schedule
from jobctl.secrets import has_reference, redact_headers, redact_url
from jobctl.store.sqlite import write_transaction
from jobctl.timeutil import (
    format_duration,
    from_db,
    get_zone,
    iso_z,
    local_zone_name,
    parse_time,
    to_db,
)

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
RESERVED_NAMES = frozenset({"list", "show", "prune", "clear"})
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
EXPECT_ITEM = re.compile(r"[1-5]xx|[1-5][0-9]{2}(-[1-5][0-9]{2})?")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ACTIONS = tuple(m.value for m in ActionKind)
TRIGGERS = tuple(m.value for m in ScheduleKind)

# Spec keys per action, in the one order every output (JSON, show, export) writes them.
SPEC_KEYS: dict[str, tuple[str, ...]] = {
    "http": ("url", "method", "headers", "body", "expect", "forward_payload"),
    "agent": ("agent", "prompt", "deliver"),
    "exec": ("command", "cwd", "env", "shell"),
}

# Option name -> the action kind it belongs to.
ACTION_FIELDS = {
    "method": "http",
    "header": "http",
    "body": "http",
    "json_body": "http",
    "expect": "http",
    "forward_payload": "http",
    "prompt": "agent",
    "deliver": "agent",
    "cwd": "exec",
    "env": "exec",
    "shell": "exec",
}


@dataclass
class Job:
    name: str
    action: str
    spec: dict[str, Any]
    trigger: str
    schedule: str | None
    timezone: str
    description: str = ""
    state: str = "enabled"
    paused_reason: str | None = None
    policies: dict[str, Any] = field(default_factory=dict)
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
    _effective: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        def when(key: str) -> datetime | None:
            value = row[key]
            return from_db(value) if value else None

        return cls(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            state=row["state"],
            paused_reason=row["paused_reason"],
            action=row["action"],
            spec=json.loads(row["spec"]),
            trigger=row["trigger"],
            schedule=row["schedule"],
            timezone=row["timezone"],
            policies=json.loads(row["policies"]),
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

    def effective_policies(self) -> dict[str, Any]:
        # Computed once per Job object (the daemon asks several times per fire); a copy,
        # so that a caller changing it changes nothing here.
        if self._effective is None:
            self._effective = policies.effective(
                self.action, self.policies, agent_timeout=self.agent_timeout
            )
        return dict(self._effective)

    def use_agent_timeout(self, seconds: float | None) -> None:
        self.agent_timeout = seconds
        self._effective = None

    def build_schedule(self) -> Schedule | None:
        return schedule.build_schedule(self.trigger, self.schedule, self.timezone)


# ---------------------------------------------------------------------------- validation


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise InvalidInput(
            f"invalid job name {name!r}: use 1-64 characters from a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    if name in RESERVED_NAMES:
        raise InvalidInput(f"invalid job name {name!r}: it is a `jobctl runs` subcommand")
    return name


def validate_url(url: str, *, what: str = "--url") -> str:
    url = url.strip()
    if any(ch.isspace() for ch in url):
        raise InvalidInput(f"invalid {what} {url!r}: URLs cannot contain spaces (encode as %20)")
    if has_reference(url) and re.match(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", url):
        return url  # the whole base comes from a secret; checked when it fires
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"invalid {what} {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"invalid {what} {url!r}: use an absolute http:// or https:// URL")
    return url


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not HEADER_NAME.fullmatch(name):
        raise InvalidInput(f"invalid --header {text!r}: write it as 'Name: value'")
    value = value.strip()
    if "\r" in value or "\n" in value:
        raise InvalidInput(f"invalid --header {text!r}: a value cannot contain a line break")
    return name, value


def validate_expect(text: str) -> str:
    cleaned = text.replace(" ", "").lower()
    items = cleaned.split(",")
    if not cleaned or not all(EXPECT_ITEM.fullmatch(item) for item in items):
        raise InvalidInput(
            f"invalid --expect {text!r}: use status codes or classes like 2xx, 200,204 or 200-299"
        )
    return cleaned


def parse_env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise InvalidInput(f"invalid --env {text!r}: write it as NAME=value")
    return name, value


def read_text_argument(value: str, *, what: str) -> str:
    """`TEXT`, `@FILE` or `-` (standard input), as --body and --prompt take them."""
    from jobctl.textfiles import TEXT_LIMIT, read_text

    if value == "-":
        return read_text("-", limit=TEXT_LIMIT, what=f"{what} from standard input")
    if value.startswith("@"):
        path = value[1:]
        try:
            return read_text(path, limit=TEXT_LIMIT, what=f"{what} file {path!r}")
        except OSError as exc:
            raise InvalidInput(f"cannot read {what} file {path!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"cannot read {what} file {path!r}: not UTF-8 text") from None
    return value


# ------------------------------------------------------------------------- building jobs


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


def _build_spec(kind: str, options: Mapping[str, Any], existing: Job | None) -> dict[str, Any]:
    for key, owner in ACTION_FIELDS.items():
        if _given(options, key) and owner != kind:
            flag = "--" + key.replace("_", "-")
            raise InvalidInput(f"{flag} applies to {owner} jobs only, and this is a {kind} job")
    spec = dict(existing.spec) if existing is not None and existing.action == kind else {}
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
    if _given(options, "offset") and chosen != "every":
        if existing is None or existing.trigger != "every" or chosen is not None:
            raise InvalidInput("--offset goes with --every")
    zone = get_zone(zone_name)
    if chosen is None:
        if existing is None:
            raise InvalidInput(
                "a job needs a trigger: --cron EXPR, --every DURATION, --at TIME or --manual"
            )
        if existing.trigger == "every" and _given(options, "offset"):
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
        if _given(options, "offset"):
            text = f"{text}+{options['offset']}"
        elif (
            existing is not None
            and existing.trigger == "every"
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
    stored_policies = dict(existing.policies) if existing is not None else {}
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
            action=kind,
            spec=spec,
            trigger=trigger,
            schedule=schedule_text,
            timezone=zone_name,
            policies=stored_policies,
        )
    else:
        job = replace(
            existing,
            action=kind,
            spec=spec,
            trigger=trigger,
            schedule=schedule_text,
            timezone=zone_name,
            policies=stored_policies,
        )
        if options.get("new_name"):
            job.name = validate_name(str(options["new_name"]))
    if options.get("description") is not None:
        job.description = str(options["description"])
    if options.get("state"):
        job.state = _validate_state(str(options["state"]))
        if job.state != "paused":
            job.paused_reason = None
    schedule_changed = trigger_changed or (existing is not None and existing.timezone != zone_name)
    if existing is not None and schedule_changed and job.state == "completed":
        job.state = "enabled"
    if existing is None or schedule_changed or job.state != existing.state:
        job.next_run_at = compute_next_run(job, now, validate=job.state != "completed")
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


def set_chains(conn: sqlite3.Connection, job: Job, after: list[tuple[str, str]]) -> None:
    """Replace the jobs this one runs after (inside the caller's transaction); no cycles."""
    assert job.id is not None
    conn.execute("DELETE FROM chains WHERE job_id = ?", (job.id,))
    for upstream_name, when in after:
        upstream = get_job(conn, upstream_name)
        if upstream.id == job.id:
            raise InvalidInput(f"--after {upstream_name}: a job cannot run after itself")
        if _reaches(conn, job.id, upstream.id or 0):
            raise InvalidInput(
                f"--after {upstream_name}: that makes a cycle ({upstream_name} already runs "
                f"after {job.name}, directly or through other jobs)"
            )
        conn.execute(
            "INSERT OR IGNORE INTO chains (job_id, upstream_id, on_status) VALUES (?, ?, ?)",
            (job.id, upstream.id, when),
        )


def _reaches(conn: sqlite3.Connection, start: int, target: int) -> bool:
    """Whether `target` runs after `start`, following chains downstream."""
    seen, frontier = {start}, [start]
    while frontier:
        current = frontier.pop()
        for (downstream,) in conn.execute(
            "SELECT job_id FROM chains WHERE upstream_id = ?", (current,)
        ):
            if downstream == target:
                return True
            if downstream not in seen:
                seen.add(downstream)
                frontier.append(downstream)
    return False


def chains_of(conn: sqlite3.Connection, job_id: int) -> list[str]:
    return [
        f"{name}:{when}"
        for name, when in conn.execute(
            "SELECT jobs.name, chains.on_status FROM chains JOIN jobs ON jobs.id = chains.upstream_id"
            " WHERE chains.job_id = ? ORDER BY jobs.name",
            (job_id,),
        )
    ]


def _validate_state(state: str) -> str:
    if state not in ("enabled", "paused", "completed"):
        raise InvalidInput(f"invalid state {state!r}: choose enabled, paused or completed")
    return state


def compute_next_run(job: Job, now: datetime, *, validate: bool = False) -> datetime | None:
    """The next fire after now (or after the last fired slot), None when nothing is scheduled."""
    plan = job.build_schedule()
    if plan is None:
        return None
    if validate and job.trigger != "once":
        schedule.validate_fires(plan, now)
    if job.state != "enabled":
        return None
    after = max(now, job.last_slot_at) if job.last_slot_at else now
    return plan.next_after(after)


# ------------------------------------------------------------------------------ storage

_COLUMNS = (
    "name",
    "description",
    "state",
    "paused_reason",
    "action",
    "spec",
    "trigger",
    "schedule",
    "timezone",
    "policies",
    "next_run_at",
    "last_slot_at",
    "consecutive_failures",
    "updated_at",
)


def _column_values(job: Job) -> list[Any]:
    return [
        job.name,
        job.description,
        job.state,
        job.paused_reason,
        job.action,
        json.dumps(job.spec, sort_keys=True),
        job.trigger,
        job.schedule,
        job.timezone,
        json.dumps(job.policies, sort_keys=True),
        to_db(job.next_run_at) if job.next_run_at else None,
        to_db(job.last_slot_at) if job.last_slot_at else None,
        job.consecutive_failures,
        to_db(job.updated_at) if job.updated_at else None,
    ]


def check_agent(conn: sqlite3.Connection, job: Job) -> None:
    if job.action == "agent":
        name = job.spec.get("agent")
        if conn.execute("SELECT 1 FROM agents WHERE name = ?", (name,)).fetchone() is None:
            raise NotFound(f"no agent named {name!r}: add it with `jobctl agent add {name} ...`")
        load_agent_timeouts(conn, [job])


def load_agent_timeouts(conn: sqlite3.Connection, jobs: Iterable[Job]) -> None:
    """Give each agent job its agent's --timeout, which is its own when it sets none."""
    wanted = [job for job in jobs if job.action == "agent"]
    if not wanted:
        return
    timeouts = {
        name: json.loads(config).get("timeout")
        for name, config in conn.execute("SELECT name, config FROM agents")
    }
    for job in wanted:
        job.use_agent_timeout(timeouts.get(job.spec.get("agent")))


def insert_job(conn: sqlite3.Connection, job: Job, now: datetime) -> Job:
    """Insert inside the caller's write transaction."""
    check_agent(conn, job)
    if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (job.name,)).fetchone():
        raise InvalidInput(
            f"a job named {job.name!r} already exists: use `jobctl edit {job.name}` to change it"
        )
    job.created_at = job.updated_at = now
    cursor = conn.execute(
        f"INSERT INTO jobs ({', '.join(_COLUMNS)}, created_at) "
        f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})",
        [*_column_values(job), to_db(now)],
    )
    job.id = cursor.lastrowid
    return job


def update_job(conn: sqlite3.Connection, job: Job, now: datetime) -> Job:
    """Update inside the caller's write transaction; a rename keeps the history (same id)."""
    check_agent(conn, job)
    clash = conn.execute(
        "SELECT 1 FROM jobs WHERE name = ? AND id != ?", (job.name, job.id)
    ).fetchone()
    if clash:
        raise InvalidInput(f"cannot rename to {job.name!r}: a job with that name exists")
    job.updated_at = now
    assignments = ", ".join(f"{column} = ?" for column in _COLUMNS)
    conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*_column_values(job), job.id])
    return job


def add_job(conn: sqlite3.Connection, options: Mapping[str, Any], now: datetime) -> Job:
    job = build_job(options, existing=None, now=now)
    after = parse_after(options.get("after") or ())
    with write_transaction(conn):
        insert_job(conn, job, now)
        if after:
            set_chains(conn, job, after)
        return job


def edit_job(conn: sqlite3.Connection, name: str, options: Mapping[str, Any], now: datetime) -> Job:
    after = parse_after(options["after"]) if options.get("after") is not None else None
    with write_transaction(conn):
        existing = get_job(conn, name)
        job = build_job(options, existing=existing, now=now)
        update_job(conn, job, now)
        if after is not None:
            set_chains(conn, job, after)
        return job


def get_job(conn: sqlite3.Connection, name: str) -> Job:
    row = conn.execute("SELECT * FROM jobs WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(_not_found_message(conn, name))
    job = Job.from_row(row)
    load_agent_timeouts(conn, [job])
    return job


def _not_found_message(conn: sqlite3.Connection, name: str) -> str:
    names = [row[0] for row in conn.execute("SELECT name FROM jobs")]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f": did you mean {close[0]!r}?" if close else " (see `jobctl list`)"
    return f"no job named {name!r}{hint}"


def get_jobs(conn: sqlite3.Connection, names: Iterable[str]) -> list[Job]:
    """All the named jobs, or NotFound naming the first unknown one (nothing is changed)."""
    return [get_job(conn, name) for name in dict.fromkeys(names)]


def list_jobs(conn: sqlite3.Connection, names: Iterable[str] = ()) -> list[Job]:
    wanted = list(names)
    if wanted:
        return get_jobs(conn, wanted)
    jobs = [Job.from_row(row) for row in conn.execute("SELECT * FROM jobs ORDER BY name")]
    load_agent_timeouts(conn, jobs)
    return jobs


def running_run_count(conn: sqlite3.Connection, job_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM runs WHERE job_id = ? AND status IN ('running', 'queued')",
        (job_id,),
    ).fetchone()
    return int(row[0])


def remove_jobs(conn: sqlite3.Connection, names: Iterable[str], *, force: bool) -> list[str]:
    with write_transaction(conn):
        jobs = get_jobs(conn, names)
        if not force:
            for job in jobs:
                assert job.id is not None
                if running_run_count(conn, job.id):
                    raise Failed(
                        f"job {job.name!r} has a run in flight: wait for it, or use --force"
                    )
        conn.executemany("DELETE FROM jobs WHERE id = ?", [(job.id,) for job in jobs])
    return [job.name for job in jobs]


def set_paused(
    conn: sqlite3.Connection,
    names: Iterable[str],
    paused: bool,
    now: datetime,
    *,
    reason: str | None = None,
) -> list[Job]:
    """Pause or resume the named jobs; resume recomputes the next run and resets failures."""
    changed = []
    with write_transaction(conn):
        jobs = get_jobs(conn, names)
        for job in jobs:
            if job.state == "completed":
                raise Failed(
                    f"job {job.name!r} is completed (a one-shot that fired): "
                    f"give it a new time with `jobctl edit {job.name} --at TIME`"
                )
        for job in jobs:
            if paused:
                job.state, job.paused_reason, job.next_run_at = "paused", reason, None
            elif job.state == "paused":
                job.state, job.paused_reason, job.consecutive_failures = "enabled", None, 0
                job.last_slot_at = None
                job.next_run_at = compute_next_run(job, now)
            update_job(conn, job, now)
            changed.append(job)
    return changed


# ---------------------------------------------------------------------------- rendering


def ordered_spec(action: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's keys in SPEC_KEYS order (any unknown ones after, sorted)."""
    known = SPEC_KEYS.get(action, ())
    keys = [key for key in known if key in spec]
    keys += sorted(key for key in spec if key not in known)
    return {key: spec[key] for key in keys}


def redacted_spec(job: Job) -> dict[str, Any]:
    spec = ordered_spec(job.action, job.spec)
    if job.action == "http":
        spec["url"] = redact_url(spec.get("url", ""))
        spec["headers"] = redact_headers(spec.get("headers") or {})
    if spec.get("deliver"):
        spec["deliver"] = redact_url(spec["deliver"])
    return spec


def job_to_dict(job: Job) -> dict[str, Any]:
    """The contract's JSON form of a job (secrets redacted)."""
    return {
        "name": job.name,
        "description": job.description,
        "state": job.state,
        "paused_reason": job.paused_reason,
        "action": job.action,
        "trigger": job.trigger,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "next_run_at": iso_z(job.next_run_at),
        "last_run_at": iso_z(job.last_run_at),
        "last_status": job.last_status,
        "last_success_at": iso_z(job.last_success_at),
        "runs_total": job.runs_total,
        "runs_succeeded": job.runs_succeeded,
        "runs_failed": job.runs_failed,
        "runs_skipped": job.runs_skipped,
        "runs_missed": job.runs_missed,
        "consecutive_failures": job.consecutive_failures,
        "spec": redacted_spec(job),
        "policies": _redacted_policies(job.effective_policies()),
        "created_at": iso_z(job.created_at),
        "updated_at": iso_z(job.updated_at),
    }


def _redacted_policies(effective: dict[str, Any]) -> dict[str, Any]:
    effective["notify"] = [
        {"on": item["on"], "url": redact_url(item["url"])} for item in effective["notify"]
    ]
    return effective


def action_summary(job: Job) -> str:
    spec = job.spec
    if job.action == "http":
        return f"{spec.get('method', 'GET')} {redact_url(spec.get('url', ''))}"
    if job.action == "agent":
        prompt = " ".join(str(spec.get("prompt", "")).split())
        return f"agent {spec.get('agent')}: {prompt[:40]}{'…' if len(prompt) > 40 else ''}"
    return f"exec {spec.get('command')}"
