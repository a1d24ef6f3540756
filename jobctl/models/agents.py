"""Agents: what an agent job's prompt is sent to, and a change asked for."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobctl.models.jobs import Row
from jobctl.timeutil import from_db


@dataclass(frozen=True)
class StoredAgent:
    """An agent's definition as stored, its `config` JSON left as text (see StoredJob)."""

    name: str
    kind: str
    config: str


@dataclass
class Agent:
    name: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int | None = None

    @classmethod
    def from_row(cls, row: Row) -> Agent:
        """The agent from its stored row (the store calls this)."""
        return cls(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            config=json.loads(row["config"]),
            created_at=from_db(row["created_at"]),
            updated_at=from_db(row["updated_at"]),
        )

    @property
    def timeout(self) -> float | None:
        """The agent's own timeout in seconds, if it sets one."""
        value = self.config.get("timeout")
        return float(value) if value is not None else None


@dataclass(frozen=True)
class TokenUse:
    """Tokens runs used (as their usage recorded it), and in how many calls."""

    total: int = 0
    prompt: int = 0
    completion: int = 0
    calls: int = 0


@dataclass(frozen=True)
class AgentChange:
    """A new agent, or a change to one: what `agent add`, `agent edit` and `apply`'s
    `[[agents]]` entries ask for (see JobChange).

    Every field left None is "not given": an edit keeps what the agent has. '' clears an
    optional text field, as on the command line, and an empty mapping the `headers`.
    `jobctl.agent_changes.build_agent` validates a change into an Agent; values are as
    people write them (the timeout as a duration, numbers as text or numbers), already read
    from `@FILE` where the CLI allows that. `command` makes a command agent, `kind` chooses
    between openai and anthropic.
    """

    name: str | None = None
    kind: str | None = None
    # openai and anthropic agents
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    system: str | None = None
    temperature: str | float | None = None
    max_tokens: str | float | None = None
    headers: Mapping[str, str] | None = None
    # command agents
    command: str | None = None
    # every kind: a duration ("90s") or seconds
    timeout: str | float | None = None
    # every kind: a token budget per day, week or month; prices per million tokens
    budget_tokens: str | int | None = None
    budget_per: str | None = None
    price_in: str | float | None = None
    price_out: str | float | None = None
