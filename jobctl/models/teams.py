"""Teams: agents that answer one prompt in turn, each a step of the run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from jobctl.models.jobs import Row
from jobctl.timeutil import from_db


class MemberDict(TypedDict):
    """A member's stored and JSON form: an agent with its role text, or an approval point
    (`agent` null, `approve` the text the people asked are shown)."""

    agent: str | None
    role: str
    approve: str | None


@dataclass(frozen=True)
class Member:
    """One member of a team: `agent` answers with its `role` text laid over the prompt."""

    agent: str
    role: str = ""

    def to_dict(self) -> MemberDict:
        return {"agent": self.agent, "role": self.role, "approve": None}


@dataclass
class Team:
    """A named, ordered list of members."""

    name: str
    members: list[Member] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int | None = None

    @classmethod
    def from_row(cls, row: Row) -> Team:
        """The team from its stored row (the store calls this)."""
        members = [
            Member(agent=str(item.get("agent") or ""), role=str(item.get("role") or ""))
            for item in json.loads(row["members"])
        ]
        return cls(
            id=row["id"],
            name=row["name"],
            members=members,
            created_at=from_db(row["created_at"]),
            updated_at=from_db(row["updated_at"]),
        )

    def members_json(self) -> str:
        """The members as stored."""
        return json.dumps([member.to_dict() for member in self.members])
