"""Agents: named profiles that agent jobs send their prompts to (validation and storage).

An `openai` agent speaks the OpenAI-compatible chat-completions API, an `anthropic` agent the
Anthropic Messages API, and a `command` agent is a local program that reads the prompt on
stdin (or as one argument, where its command line says `{prompt}`) and answers on stdout.
The API key is never stored: only the name of the environment variable that holds it.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.errors import Failed, InvalidInput, NotFound
from jobctl.jobs import NAME_PATTERN, parse_header, validate_url
from jobctl.models import ActionKind, Agent, Policies
from jobctl.policies import parse_policy
from jobctl.secrets import redact_headers, redact_url
from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.store.protocol import Store

KINDS = ("openai", "anthropic", "command")
HTTP_KINDS = ("openai", "anthropic")
ANTHROPIC_URL = "https://api.anthropic.com/v1"
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
MAX_TOKENS_LIMIT = 10_000_000

# Options for openai and anthropic agents only.
HTTP_FIELDS = ("url", "model", "api_key_env", "system", "temperature", "max_tokens", "header")
# Where each HTTP kind's requests go after the base URL (as actions/agent.py posts them;
# not imported from there, which would load aiohttp into every `agent` command).
ENDPOINTS = {"openai": "/chat/completions", "anthropic": "/messages"}


def run_timeout(agent: Agent, job_policies: Mapping[str, Any] | None = None) -> float:
    """Seconds a run of `agent` may take: the job's own timeout, else the agent's, else 10m."""
    stored = Policies.from_dict(job_policies or {})
    return stored.effective(ActionKind.AGENT, agent_timeout=agent.timeout).timeout


# ---------------------------------------------------------------------------- validation


def validate_agent_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise InvalidInput(
            f"invalid agent name {name!r}: use 1-64 characters from a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def _given(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key)
    return value is not None and value != () and value is not False


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _validate_api_key_env(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    # `${NAME}` and `$NAME` (quoted, so the shell left them alone) name a variable too
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    elif text.startswith("$"):
        text = text[1:]
    if not ENV_NAME.fullmatch(text):
        # never echo the value: it may well be the key itself
        raise InvalidInput(
            "invalid --api-key-env: give the NAME of an environment variable that holds the "
            "key (A-Z, 0-9, _), like OPENAI_API_KEY, never the key itself"
        )
    return text


def _validate_model(value: str) -> str:
    model = value.strip()
    if not model or any(ch.isspace() for ch in model):
        raise InvalidInput(f"invalid --model {value!r}: give the model's name, like gpt-4o-mini")
    return model


def _validate_temperature(value: Any, kind: str) -> float | None:
    if value is None or value == "":
        return None
    highest = 1.0 if kind == "anthropic" else 2.0  # the Messages API stops at 1
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= highest:
        raise InvalidInput(
            f"invalid --temperature {value!r}: use a number from 0 to {highest:g}"
            + (" for an anthropic agent" if kind == "anthropic" else "")
        )
    return number


def _validate_max_tokens(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        number = 0
    if isinstance(value, bool) or not 0 < number <= MAX_TOKENS_LIMIT:
        raise InvalidInput(f"invalid --max-tokens {value!r}: use a whole number above 0")
    return number


def _validate_base_url(value: str, kind: str) -> str:
    url = validate_url(value).rstrip("/")
    suffix = ENDPOINTS[kind]
    if url.endswith(suffix):
        raise InvalidInput(
            f"invalid --url {value!r}: give the base URL ({url[: -len(suffix)]}); "
            f"jobctl adds {suffix}"
        )
    return url


def _validate_command(value: str) -> str:
    command = value.strip()
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise InvalidInput(f"invalid --command {value!r}: {exc}") from None
    if not words:
        raise InvalidInput("invalid --command '': give the program to run, like 'my-agent --quiet'")
    return command


def _agent_kind(options: Mapping[str, Any], existing: Agent | None) -> str:
    kind = options.get("kind") or None
    if kind is not None and kind not in HTTP_KINDS:
        raise InvalidInput(
            f"invalid --kind {kind!r}: choose openai or anthropic (--command makes a command agent)"
        )
    if _given(options, "command"):
        if kind is not None:
            raise InvalidInput(
                "--command and --kind cannot be combined: --command makes a command agent"
            )
        given = [key for key in HTTP_FIELDS if _given(options, key)]
        if given:
            raise InvalidInput(
                f"--command and {_flag(given[0])} cannot be combined: a command agent runs a "
                "local program"
            )
        return "command"
    if kind is not None:
        return str(kind)
    if existing is not None:
        if existing.kind == "command":
            given = [key for key in HTTP_FIELDS if _given(options, key)]
            if given:
                raise InvalidInput(
                    f"{_flag(given[0])} applies to openai and anthropic agents, and "
                    f"{existing.name!r} is a command agent (give --kind to change that)"
                )
        return existing.kind
    return "openai"


def build_agent(options: Mapping[str, Any], existing: Agent | None = None) -> Agent:
    """Validate `options` (only those given) into a new agent or an edited copy of `existing`.

    Keys: name, kind, url, model, api_key_env, system, temperature, max_tokens, header (a list
    of 'K: V'), timeout (a duration) and command. '' clears an optional field.
    """
    kind = _agent_kind(options, existing)
    keep = existing is not None and (
        existing.kind == kind or {existing.kind, kind} <= set(HTTP_KINDS)
    )
    config: dict[str, Any] = dict(existing.config) if keep and existing is not None else {}
    if existing is not None and not keep and existing.config.get("timeout") is not None:
        config["timeout"] = existing.config["timeout"]  # a timeout suits every kind
    if kind == "command":
        if _given(options, "command"):
            config["command"] = _validate_command(str(options["command"]))
        if "command" not in config:
            raise InvalidInput("a command agent needs --command CMD")
    else:
        _build_http_config(config, kind, options)
    if options.get("timeout") is not None:
        seconds = parse_policy("timeout", options["timeout"])
        config["timeout"] = seconds
        if seconds is None:
            del config["timeout"]
    if existing is None:
        return Agent(
            name=validate_agent_name(str(options.get("name") or "")), kind=kind, config=config
        )
    return Agent(
        name=existing.name,
        kind=kind,
        config=config,
        created_at=existing.created_at,
        updated_at=existing.updated_at,
        id=existing.id,
    )


def _build_http_config(config: dict[str, Any], kind: str, options: Mapping[str, Any]) -> None:
    if _given(options, "url"):
        config["url"] = _validate_base_url(str(options["url"]), kind)
    if kind == "anthropic":
        config.setdefault("url", ANTHROPIC_URL)
    if "url" not in config:
        raise InvalidInput(
            "an openai agent needs --url BASE_URL, like https://api.openai.com/v1 or "
            "http://localhost:11434/v1"
        )
    if _given(options, "model"):
        config["model"] = _validate_model(str(options["model"]))
    if not config.get("model"):
        raise InvalidInput(f"an {kind} agent needs --model NAME")
    if options.get("api_key_env") is not None:
        config["api_key_env"] = _validate_api_key_env(str(options["api_key_env"]))
    if options.get("system") is not None:
        config["system"] = str(options["system"]) or None
    if options.get("temperature") is not None:
        config["temperature"] = _validate_temperature(options["temperature"], kind)
    elif config.get("temperature") is not None:
        config["temperature"] = _validate_temperature(config["temperature"], kind)
    if options.get("max_tokens") is not None:
        config["max_tokens"] = _validate_max_tokens(options["max_tokens"])
    if options.get("header") is not None:
        config["headers"] = dict(parse_header(str(item)) for item in options["header"] if item)
    for key in [key for key, value in config.items() if value is None or value == {}]:
        del config[key]  # stored as set: an absent key is an unset field


# ------------------------------------------------------------------------------ storage


def _not_found_message(store: Store, name: str) -> str:
    close = difflib.get_close_matches(name, store.agent_names(), n=1)
    hint = f": did you mean {close[0]!r}?" if close else " (see `jobctl agent list`)"
    return f"no agent named {name!r}{hint}"


def get_agent(store: Store, name: str) -> Agent:
    agent = store.agent_named(name)
    if agent is None:
        raise NotFound(_not_found_message(store, name))
    return agent


def list_agents(store: Store) -> list[Agent]:
    return store.all_agents()


def jobs_using(store: Store, name: str) -> list[str]:
    """Names of the jobs whose action prompts the agent `name`."""
    return store.jobs_using_agent(name)


def add_agent(store: Store, options: Mapping[str, Any], now: datetime) -> Agent:
    agent = build_agent(options)
    with store.write():
        if store.agent_named(agent.name) is not None:
            raise InvalidInput(
                f"an agent named {agent.name!r} already exists: use "
                f"`jobctl agent edit {agent.name}` to change it"
            )
        agent.created_at = agent.updated_at = now
        agent.id = store.insert_agent(agent)
    return agent


def edit_agent(store: Store, name: str, options: Mapping[str, Any], now: datetime) -> Agent:
    """Each option given replaces that field; the rest stay as they were."""
    with store.write():
        agent = build_agent(options, get_agent(store, name))
        agent.updated_at = now
        store.update_agent(agent)
    return agent


@dataclass
class Removed:
    agent: str
    paused_jobs: list[str]


def remove_agents(
    store: Store, names: Iterable[str], *, force: bool, now: datetime
) -> list[Removed]:
    """Remove every named agent or none: an unknown name, or one still in use without
    `force`, changes nothing. With `force`, the jobs using them are paused, saying why."""
    removed: list[Removed] = []
    with store.write():
        agents = [get_agent(store, name) for name in dict.fromkeys(names)]
        users = {agent.name: store.jobs_using_agent(agent.name) for agent in agents}
        if not force:
            for agent in agents:
                jobs = users[agent.name]
                if jobs:
                    which = "them" if len(jobs) > 1 else "it"
                    raise Failed(
                        f"agent {agent.name!r} is used by job{'s' if len(jobs) > 1 else ''} "
                        f"{', '.join(jobs)}: change or remove {which} first, or use --force "
                        f"to remove the agent and pause {which}"
                    )
        for agent in agents:
            assert agent.id is not None
            # completed one-shots stay completed
            paused = store.pause_jobs_named(
                users[agent.name], f"agent {agent.name} was removed", now
            )
            store.delete_agent(agent.id)
            removed.append(Removed(agent.name, paused))
    return removed


def remove_agent(store: Store, name: str, force: bool, now: datetime) -> Removed:
    return remove_agents(store, [name], force=force, now=now)[0]


# ---------------------------------------------------------------------------- rendering


def agent_to_dict(agent: Agent, jobs: list[str]) -> dict[str, Any]:
    """The JSON form of an agent (secrets redacted; the API key is never stored anyway)."""
    config = agent.config
    url = config.get("url")
    return {
        "name": agent.name,
        "kind": agent.kind,
        "url": redact_url(str(url)) if url else None,
        "model": config.get("model"),
        "api_key_env": config.get("api_key_env"),
        "system": config.get("system"),
        "temperature": config.get("temperature"),
        "max_tokens": config.get("max_tokens"),
        "headers": redact_headers(config.get("headers") or {}),
        "command": config.get("command"),
        "timeout": agent.timeout,
        "jobs": jobs,
        "created_at": iso_z(agent.created_at),
        "updated_at": iso_z(agent.updated_at),
    }


def agent_summary(agent: Agent) -> str:
    """Where the agent's prompts go, in one line for tables."""
    if agent.kind == "command":
        return str(agent.config.get("command", ""))
    return redact_url(str(agent.config.get("url", "")))


__all__ = [
    "ANTHROPIC_URL",
    "KINDS",
    "Agent",
    "Removed",
    "add_agent",
    "agent_summary",
    "agent_to_dict",
    "build_agent",
    "edit_agent",
    "get_agent",
    "jobs_using",
    "list_agents",
    "remove_agent",
    "remove_agents",
    "run_timeout",
    "validate_agent_name",
]
