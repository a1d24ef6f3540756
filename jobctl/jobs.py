"""Jobs: the Job, the rules its fields follow, its next run, and its JSON form (no SQL).

Validating a `JobChange` into a job is `jobctl.job_changes`; adding, editing, removing and
reading jobs in a store is `jobctl.catalog`.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from jobctl import schedule
from jobctl.errors import InvalidInput
from jobctl.models import (
    ActionKind,
    AgentSpec,
    EffectivePoliciesDict,
    HttpSpec,
    Job,
    JobState,
    ScheduleKind,
    SpecDict,
)
from jobctl.secrets import has_reference, redact_headers, redact_url
from jobctl.timeutil import iso_z

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
RESERVED_NAMES = frozenset({"list", "show", "prune", "clear", "cancel", "rerun"})
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
EXPECT_ITEM = re.compile(r"[1-5]xx|[1-5][0-9]{2}(-[1-5][0-9]{2})?")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ACTIONS = tuple(m.value for m in ActionKind)
TRIGGERS = tuple(m.value for m in ScheduleKind)

# Spec keys per action, in the one order every output (JSON, show, export) writes them.
SPEC_KEYS: dict[str, tuple[str, ...]] = {
    "http": (
        "url",
        "method",
        "headers",
        "body",
        "expect",
        "forward_payload",
        "expect_body",
        "expect_json",
        "expect_headers",
        "max_duration",
        "max_redirects",
        "timings",
    ),
    "agent": (
        "agent",
        "prompt",
        "deliver",
        "team",
        "model",
        "max_tokens",
        "budget_tokens",
        "budget_per",
    ),
    "exec": ("command", "cwd", "env", "shell"),
}

# JobChange field -> the action kind it belongs to and the option that sets it.
ACTION_FIELDS = {
    "method": ("http", "--method"),
    "headers": ("http", "--header"),
    "body": ("http", "--body"),
    "json_body": ("http", "--json-body"),
    "expect": ("http", "--expect"),
    "forward_payload": ("http", "--forward-payload"),
    "expect_body": ("http", "--expect-body"),
    "expect_json": ("http", "--expect-json"),
    "expect_headers": ("http", "--expect-header"),
    "max_duration": ("http", "--max-duration"),
    "max_redirects": ("http", "--max-redirects"),
    "timings": ("http", "--timings"),
    "prompt": ("agent", "--prompt"),
    "deliver": ("agent", "--deliver"),
    "model": ("agent", "--model"),
    "max_tokens": ("agent", "--max-tokens"),
    "budget_tokens": ("agent", "--budget-tokens"),
    "budget_per": ("agent", "--budget-per"),
    "cwd": ("exec", "--cwd"),
    "env": ("exec", "--env"),
    "shell": ("exec", "--shell"),
}


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


def validate_queue(queue: str) -> str:
    """A queue's name: the characters of a job name."""
    if not NAME_PATTERN.fullmatch(queue or ""):
        raise InvalidInput(
            f"invalid queue {queue!r}: use 1-64 characters from a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return queue


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
    """A `--header 'Name: value'` option as its name and value."""
    name, sep, value = text.partition(":")
    if not sep:
        raise InvalidInput(f"invalid --header {text!r}: write it as 'Name: value'")
    return check_header(name, value, text=text)


def check_header(name: str, value: str, *, text: str | None = None) -> tuple[str, str]:
    """A header's name and value, stripped; `text` is how the user wrote it (for errors)."""
    text = f"{name}: {value}" if text is None else text
    name = name.strip()
    if not HEADER_NAME.fullmatch(name):
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
    """An `--env NAME=value` option as its name and value."""
    name, sep, value = text.partition("=")
    if not sep:
        raise InvalidInput(f"invalid --env {text!r}: write it as NAME=value")
    return check_env(name, value, text=text)


def check_env(name: str, value: str, *, text: str | None = None) -> tuple[str, str]:
    """An environment variable's name and value; `text` is how the user wrote it."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        text = f"{name}={value}" if text is None else text
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


def validate_state(state: str) -> str:
    if state not in tuple(JobState):
        raise InvalidInput(f"invalid state {state!r}: choose enabled, paused or completed")
    return state


def compute_next_run(job: Job, now: datetime, *, validate: bool = False) -> datetime | None:
    """The next fire after now (or after the last fired slot), None when nothing is scheduled."""
    timetable = job.build_schedule()
    if timetable is None:
        return None
    if validate and job.schedule_kind != ScheduleKind.ONCE:
        schedule.validate_fires(timetable, now)
    if job.state != JobState.ENABLED:
        return None
    after = max(now, job.last_slot_at) if job.last_slot_at else now
    return timetable.next_after(after)


# ---------------------------------------------------------------------------- rendering


def redacted_spec(job: Job) -> SpecDict:
    # The spec's own dict with the redacted values written over (dataclasses.replace was a
    # third of `list --json`'s job_to_dict).
    spec = job.spec
    if isinstance(spec, HttpSpec):
        http = spec.to_dict()
        http["url"] = redact_url(spec.url)
        http["headers"] = redact_headers(spec.headers)
        return http
    if isinstance(spec, AgentSpec) and spec.deliver:
        agent = spec.to_dict()
        agent["deliver"] = redact_url(spec.deliver)
        return agent
    return spec.to_dict()


def job_to_dict(job: Job) -> dict[str, object]:
    """The contract's JSON form of a job (secrets redacted)."""
    return {
        "name": job.name,
        "description": job.description,
        "queue": job.queue,
        "state": job.state,
        "paused_reason": job.paused_reason,
        "action": job.action,
        "trigger": job.schedule_kind,
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
        "policies": _redacted_policies(job.effective_policies().to_dict()),
        "created_at": iso_z(job.created_at),
        "updated_at": iso_z(job.updated_at),
    }


def _redacted_policies(effective: EffectivePoliciesDict) -> EffectivePoliciesDict:
    effective["notify"] = [
        {"on": item["on"], "url": redact_url(item["url"])} for item in effective["notify"]
    ]
    return effective


def action_summary(job: Job) -> str:
    from jobctl.listing import action_text

    spec = job.spec
    if isinstance(spec, HttpSpec):
        return action_text("http", method=spec.method, url=spec.url)
    if isinstance(spec, AgentSpec):
        return action_text("agent", agent=spec.agent, prompt=spec.prompt, team=spec.team)
    return action_text("exec", command=spec.command)
