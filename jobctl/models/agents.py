"""Agents: what an agent job's prompt is sent to."""

from __future__ import annotations

import json
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
