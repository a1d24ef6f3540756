"""Agents: named profiles that agent jobs send their prompts to (storage and rendering).

An `openai` agent speaks the OpenAI-compatible chat-completions API, an `anthropic` agent the
Anthropic Messages API, and a `command` agent is a local program that reads the prompt on
stdin (or as one argument, where its command line says `{prompt}`) and answers on stdout.
An AgentChange is validated into an Agent by `jobctl.agent_changes.build_agent`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from jobctl.agent_changes import ANTHROPIC_URL, KINDS, build_agent, validate_agent_name
from jobctl.errors import Failed, InvalidInput, NotFound
from jobctl.models import ActionKind, Agent, AgentChange, Policies
from jobctl.secrets import redact_headers, redact_url
from jobctl.teams import teams_using_agent
from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.store.protocol import Store


def run_timeout(agent: Agent, job_policies: Mapping[str, object] | None = None) -> float:
    """Seconds a run of `agent` may take: the job's own timeout, else the agent's, else 10m."""
    stored = Policies.from_dict(job_policies or {})
    return stored.effective(ActionKind.AGENT, agent_timeout=agent.timeout).timeout


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


def add_agent(store: Store, change: AgentChange, now: datetime) -> Agent:
    agent = build_agent(change)
    with store.write():
        if store.agent_named(agent.name) is not None:
            raise InvalidInput(
                f"an agent named {agent.name!r} already exists: use "
                f"`jobctl agent edit {agent.name}` to change it"
            )
        agent.created_at = agent.updated_at = now
        agent.id = store.insert_agent(agent)
    return agent


def edit_agent(store: Store, name: str, change: AgentChange, now: datetime) -> Agent:
    """Each field given replaces that field; the rest stay as they were."""
    with store.write():
        agent = build_agent(change, get_agent(store, name))
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
        for agent in agents:
            teams = teams_using_agent(store, agent.name)
            if teams:
                raise Failed(
                    f"agent {agent.name!r} is a member of team{'s' if len(teams) > 1 else ''} "
                    f"{', '.join(teams)}: change the team first (`jobctl team edit`)"
                )
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


class AgentDict(TypedDict):
    """The contract's JSON form of an agent."""

    name: str
    kind: str
    url: str | None
    model: str | None
    api_key_env: str | None
    system: str | None
    temperature: float | None
    max_tokens: int | None
    headers: dict[str, str]
    command: str | None
    timeout: float | None
    budget_tokens: int | None
    budget_per: str | None
    price_in: float | None
    price_out: float | None
    jobs: list[str]
    created_at: str | None
    updated_at: str | None


def agent_to_dict(agent: Agent, jobs: list[str]) -> AgentDict:
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
        "budget_tokens": config.get("budget_tokens"),
        "budget_per": config.get("budget_per"),
        "price_in": config.get("price_in"),
        "price_out": config.get("price_out"),
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
