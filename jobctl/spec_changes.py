"""Turning a change's action options into the job's spec: an HTTP request, a command, an
agent's (or a team's) prompt. Each builder starts from the job's old spec of the same kind
and lays over what the change gives; `jobctl.job_changes` chooses the kind."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import replace

from jobctl.budgets import budget_period, token_count
from jobctl.errors import InvalidInput
from jobctl.http_checks import changed_checks
from jobctl.jobs import METHODS, check_env, check_header, validate_expect, validate_url
from jobctl.models import AgentSpec, ExecSpec, HttpSpec, JobChange

# The option that sets each field, for messages (the rest are `--` + the field's name).
FLAGS = {"command": "--exec", "json_body": "--json-body", "timezone": "--tz"}


def flag(key: str) -> str:
    return FLAGS.get(key) or "--" + key.replace("_", "-")


def choose_one(change: JobChange, keys: Iterable[str], what: str) -> str | None:
    chosen = [key for key in keys if given(getattr(change, key))]
    if len(chosen) > 1:
        flags = " and ".join(flag(key) for key in chosen)
        raise InvalidInput(f"{flags} cannot be combined: a job has one {what}")
    return chosen[0] if chosen else None


def given(value: object) -> bool:
    """Given, for the fields a job has one of (a `--no-...` flag chooses nothing)."""
    return value is not None and value is not False


def agent_spec(change: JobChange, old: AgentSpec | None) -> AgentSpec:
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


def exec_spec(change: JobChange, old: ExecSpec | None) -> ExecSpec:
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


def http_spec(change: JobChange, old: HttpSpec | None) -> HttpSpec:
    url = validate_url(change.url) if change.url is not None else (old.url if old else "")
    headers = dict(old.headers) if old else {}
    if change.headers is not None:
        headers = dict(check_header(name, value) for name, value in change.headers.items())
    body = old.body if old else None
    body_given = choose_one(change, ("body", "json_body"), "body")
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
