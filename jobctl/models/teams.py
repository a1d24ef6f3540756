"""Teams: agents that answer one prompt in turn, each a step of the run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from jobctl.models.jobs import Row
from jobctl.timeutil import from_db

DEFAULT_APPROVAL_TIMEOUT = 86400.0


class MemberDict(TypedDict):
    """A member's stored and JSON form: an agent with its role text, or an approval point
    (`agent` null, `approve` the text the people asked are shown)."""

    agent: str | None
    role: str
    approve: str | None


@dataclass(frozen=True)
class Member:
    """One member of a team: `agent` answers with its `role` text laid over the prompt; or,
    with `approve` set (and `agent` ''), an approval point: the run waits there for a person."""

    agent: str
    role: str = ""
    approve: str | None = None

    def to_dict(self) -> MemberDict:
        if self.approve is not None:
            return {"agent": None, "role": "", "approve": self.approve}
        return {"agent": self.agent, "role": self.role, "approve": None}

    @property
    def label(self) -> str:
        """The member in one word: its agent, or `approval`."""
        return "approval" if self.approve is not None else self.agent


@dataclass
class Team:
    """A named, ordered list of members."""

    name: str
    members: list[Member] = field(default_factory=list)
    approval_timeout: float | None = None  # seconds a run waits at an approval point (24h)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int | None = None

    @classmethod
    def from_row(cls, row: Row) -> Team:
        """The team from its stored row (the store calls this)."""
        members = [
            Member(
                agent=str(item.get("agent") or ""),
                role=str(item.get("role") or ""),
                approve=None if item.get("approve") is None else str(item["approve"]),
            )
            for item in json.loads(row["members"])
        ]
        timeout = row["approval_timeout"]
        return cls(
            id=row["id"],
            name=row["name"],
            members=members,
            approval_timeout=None if timeout is None else float(timeout),
            created_at=from_db(row["created_at"]),
            updated_at=from_db(row["updated_at"]),
        )

    @property
    def effective_approval_timeout(self) -> float:
        return DEFAULT_APPROVAL_TIMEOUT if self.approval_timeout is None else self.approval_timeout

    def members_json(self) -> str:
        """The members as stored."""
        return json.dumps([member.to_dict() for member in self.members])
