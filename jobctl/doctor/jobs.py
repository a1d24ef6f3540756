"""Doctor's checks of what the jobs and agents need: zones, schedules, endpoints, secrets."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobctl.doctor.base import (
    CONNECT_TIMEOUT,
    DEFAULT_PORTS,
    FAIL,
    HTTP_AGENT_KINDS,
    OK,
    WARN,
    Check,
    Context,
    listed,
    load_jobs,
)
from jobctl.errors import Failed, JobctlError


def check_job_zones(ctx: Context) -> Check:
    from jobctl.timeutil import get_zone

    jobs = load_jobs(ctx)
    bad: list[str] = []
    for job in jobs:
        try:
            get_zone(job.timezone)
        except JobctlError:
            bad.append(f"{job.name} ({job.timezone})")
            ctx.bad_zones.add(job.name)
    if bad:
        return Check(
            "job zones",
            FAIL,
            f"unknown time zone in {len(bad)} job{'s' if len(bad) != 1 else ''}: {listed(bad)}",
        )
    zones = len({job.timezone for job in jobs})
    return Check("job zones", OK, f"job time zones valid ({zones} zone{'s' if zones != 1 else ''})")


def check_schedules(ctx: Context) -> Check:
    from jobctl.schedule import build_schedule

    bad: list[str] = []
    checked = 0
    for job in load_jobs(ctx):
        if job.name in ctx.bad_zones:
            continue  # already reported, and no schedule can be built without a zone
        checked += 1
        try:
            build_schedule(job.schedule_kind, job.schedule, job.timezone)
        except (JobctlError, ValueError) as exc:
            bad.append(f"{job.name} ({exc})")
    if bad:
        return Check("schedules", FAIL, f"schedules that no longer parse: {listed(bad)}")
    return Check("schedules", OK, f"schedules parse ({checked} job{'s' if checked != 1 else ''})")


# ------------------------------------------------------------------------------- agents


def _endpoint(kind: str, config: Mapping[str, Any]) -> tuple[str, int]:
    url = str(config.get("url") or ("https://api.anthropic.com" if kind == "anthropic" else ""))
    if not url:
        raise ValueError("no URL configured")
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    if port is None:
        raise ValueError(f"no port for {url!r}")
    return parts.hostname, port


def _reach(address: tuple[str, int]) -> str | None:
    """None when a TCP connection opens within the timeout, else why not."""
    try:
        with socket.create_connection(address, timeout=CONNECT_TIMEOUT):
            return None
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _command_problem(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"invalid command: {exc}"
    if not words:
        return "empty command"
    program = words[0]
    if "/" in program:
        path = Path(program).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            return f"{program} is not an executable file"
        return None
    if shutil.which(program) is None:
        return f"{program} is not on PATH"
    return None


def check_agents(ctx: Context) -> Check:
    assert ctx.store is not None
    rows = ctx.store.stored_agents()
    if not rows:
        return Check("agents", OK, "no agents to check")
    from jobctl.secrets import expand, has_reference

    problems: list[str] = []
    endpoints: dict[str, tuple[str, int]] = {}
    hidden: dict[str, bool] = {}  # agents whose host comes from a secret
    unchecked: list[str] = []  # agents whose URL names an undefined secret
    for row in rows:
        try:
            config = json.loads(row.config or "{}")
        except ValueError:
            problems.append(f"{row.name} (unreadable configuration)")
            continue
        if row.kind in HTTP_AGENT_KINDS:
            if has_reference(config.get("url")):
                # reached as the daemon would (expanded), never shown expanded; an undefined
                # name is the secrets check's to report
                try:
                    url, _ = expand(str(config["url"]), _fire_env(ctx))
                    hidden[row.name] = True
                except Failed:
                    unchecked.append(row.name)
                    continue
                config = {**config, "url": url}
            try:
                endpoints[row.name] = _endpoint(row.kind, config)
            except ValueError as exc:
                problems.append(
                    f"{row.name} ({'its URL is not usable' if hidden.get(row.name) else exc})"
                )
        elif row.kind == "command":
            problem = _command_problem(str(config.get("command") or ""))
            if problem:
                problems.append(f"{row.name} ({problem})")
    if endpoints:
        with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
            answers = dict(zip(endpoints, pool.map(_reach, endpoints.values()), strict=True))
        for name, answer in answers.items():
            if answer is not None:
                host, port = endpoints[name]
                where = "its URL" if hidden.get(name) else f"{host}:{port}"
                problems.append(f"{name} ({where}: {answer})")
    if problems:
        return Check("agents", FAIL, f"agents not usable: {listed(sorted(problems))}")
    if unchecked:
        return Check(
            "agents",
            WARN,
            f"not checked (their URL uses an undefined ${{NAME}}, see secrets): "
            f"{listed(unchecked)}",
        )
    return Check("agents", OK, f"agents reachable ({len(rows)})")


# ------------------------------------------------------------------------------ secrets


def _texts(config: Mapping[str, Any]) -> list[str]:
    """Every field of a job's spec or an agent's config that may hold `${NAME}` references
    (the action's, --deliver, and an agent's url, system prompt, headers and command)."""
    keys = ("url", "body", "prompt", "command", "deliver", "system")
    texts = [config.get(key) for key in keys]
    for key in ("headers", "env"):
        values = config.get(key)
        if isinstance(values, Mapping):
            texts.extend(values.values())
    return [str(text) for text in texts if text]


def _notify_urls(policies_text: str | None) -> list[str]:
    """The --notify-on URLs of a job's stored policies (expanded when a notification goes)."""
    items = _json_object(policies_text).get("notify")
    if not isinstance(items, list):
        return []
    return [str(item["url"]) for item in items if isinstance(item, Mapping) and item.get("url")]


def _json_object(text: str | None) -> Mapping[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, Mapping) else {}


def _secret_users(ctx: Context) -> dict[str, list[str]]:
    """Each `${NAME}` (and each agent's --api-key-env) -> who needs it: job names, `agent X`."""
    from jobctl.secrets import references

    assert ctx.store is not None
    users: dict[str, list[str]] = {}

    def need(name: str, user: str) -> None:
        if user not in users.setdefault(name, []):
            users[name].append(user)

    for job in load_jobs(ctx):
        spec = _json_object(job.spec)
        for text in [*_texts(spec), *_notify_urls(job.policies)]:
            for name in references(text):
                need(name, job.name)
    for row in ctx.store.stored_agents():
        config = _json_object(row.config)
        user = f"agent {row.name}"
        for text in _texts(config):
            for name in references(text):
                need(name, user)
        if config.get("api_key_env"):
            need(str(config["api_key_env"]), user)
    return users


def _fire_env(ctx: Context) -> dict[str, str]:
    """What `${NAME}` expands from, as for the daemon (an unreadable env file adds nothing)."""
    env = dict(ctx.environ)
    if ctx.env_file is not None:
        from jobctl.secrets import read_env_file

        with contextlib.suppress(JobctlError):
            env.update(read_env_file(ctx.env_file))
    return env


def check_secrets(ctx: Context) -> Check:
    source = "the environment"
    if ctx.env_file is not None:
        from jobctl.secrets import read_env_file

        try:
            read_env_file(ctx.env_file)
        except JobctlError as exc:
            return Check("secrets", FAIL, str(exc))
        source += f" or {ctx.env_file}"
    defined = set(_fire_env(ctx))
    used = _secret_users(ctx)
    missing = {name: users for name, users in used.items() if name not in defined}
    if missing:
        undefined = [
            f"${{{name}}} (used by {', '.join(users)})" for name, users in sorted(missing.items())
        ]
        return Check("secrets", WARN, f"references not defined in {source}: {listed(undefined)}")
    if not used:
        return Check("secrets", OK, "no ${NAME} references")
    return Check(
        "secrets",
        OK,
        f"every ${{NAME}} reference is defined ({len(used)} name{'s' if len(used) != 1 else ''})",
    )


# --------------------------------------------------------------------------------- runs


def check_orphaned_runs(ctx: Context) -> Check:
    """`running` rows whose process is gone: the next jobctl process marks them interrupted."""
    from jobctl import runs

    assert ctx.store is not None
    rows = ctx.store.running_runs()
    orphans = [
        row
        for row in rows
        if row.owner_host == runs.HOST
        and not runs.process_exists(row.owner_pid or 0, since=row.started_at)
    ]
    if orphans:
        count = len(orphans)
        named = listed([f"{row.id} ({row.job or 'ad hoc'})" for row in orphans])
        return Check(
            "runs",
            WARN,
            f"{count} run{'s' if count != 1 else ''} will be marked "
            f"interrupted: {'their' if count != 1 else 'its'} process is "
            f"gone (run {named})",
        )
    return Check("runs", OK, f"no orphaned runs ({len(rows)} running)")


JOB_CHECKS: list[tuple[str, Callable[[Context], Check]]] = [
    ("job zones", check_job_zones),
    ("schedules", check_schedules),
    ("agents", check_agents),
    ("secrets", check_secrets),
    ("runs", check_orphaned_runs),
]
