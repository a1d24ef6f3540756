"""Teams in a jobs file: `export` writes them as `[[teams]]`, `apply` adds and changes them
(before the jobs that may prompt them). Teams the file does not list are left alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.errors import Failed, InvalidInput, JobctlError, NotFound
from jobctl.models import Member, Team
from jobctl.teams import (
    APPROVE,
    MAX_MEMBERS,
    parse_approval_timeout,
    parse_member,
    validate_team_name,
)
from jobctl.timeutil import format_duration

if TYPE_CHECKING:
    from jobctl.store.protocol import Store

TEAM_KEYS = ("name", "members", "approval_timeout")


@dataclass
class TeamPlan:
    """What `apply` does to teams."""

    added: list[Team] = field(default_factory=list)
    changed: list[Team] = field(default_factory=list)
    unchanged: list[Team] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed)

    def names(self) -> dict[str, list[str]]:
        return {
            "added": [team.name for team in self.added],
            "changed": [team.name for team in self.changed],
            "unchanged": [team.name for team in self.unchanged],
        }


def export_team_entry(team: Team) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": team.name,
        "members": [
            {"approve": m.approve} if m.approve is not None else {"agent": m.agent, "role": m.role}
            for m in team.members
        ],
    }
    if team.approval_timeout is not None:
        entry["approval_timeout"] = format_duration(team.approval_timeout)
    return entry


def plan_teams(
    plan: TeamPlan, entries: list[object], stored: Iterable[Team], agents: set[str]
) -> set[str]:
    """Validate the `[[teams]]` entries into the plan; the names of the teams there will be.
    `agents`: the names of the agents there will be."""
    known = {team.name: team for team in stored}
    listed: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"teams[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
        try:
            new = _team_entry(entry, agents)
            if new.name in listed:
                raise InvalidInput(f"duplicate name: teams[{listed[new.name]}] has it too")
        except JobctlError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        listed[new.name] = index
        old = known.get(new.name)
        if old is None:
            plan.added.append(new)
        elif (old.members, old.approval_timeout) == (new.members, new.approval_timeout):
            plan.unchanged.append(old)
        else:
            new.id, new.created_at = old.id, old.created_at
            plan.changed.append(new)
    return set(known) | set(listed)


def _team_entry(entry: object, agents: set[str]) -> Team:
    if not isinstance(entry, Mapping):
        raise InvalidInput("an entry must be a table")
    unknown = sorted(set(entry) - set(TEAM_KEYS))
    if unknown:
        raise InvalidInput(f"unknown key {unknown[0]!r} (a team has {', '.join(TEAM_KEYS)})")
    name = entry.get("name")
    if not isinstance(name, str):
        raise InvalidInput("a team needs a name")
    members = entry.get("members")
    if not isinstance(members, list) or not members:
        raise InvalidInput("a team needs members: a list of AGENT[:ROLE] texts or tables")
    if len(members) > MAX_MEMBERS:
        raise InvalidInput(f"a team has at most {MAX_MEMBERS} members")
    timeout = entry.get("approval_timeout")
    if timeout is not None and not isinstance(timeout, str):
        raise InvalidInput("approval_timeout must be a duration like 24h")
    team = Team(
        name=validate_team_name(name),
        members=[_member(item) for item in members],
        approval_timeout=parse_approval_timeout(timeout),
    )
    for member in team.members:
        if member.approve is None and member.agent not in agents:
            raise NotFound(f"no agent named {member.agent!r}")
    return team


def _member(item: object) -> Member:
    if isinstance(item, str):
        return parse_member(item)
    if isinstance(item, Mapping) and isinstance(item.get("approve"), str):
        return parse_member(f"{APPROVE}:{item['approve']}")
    if isinstance(item, Mapping) and isinstance(item.get("agent"), str):
        role = item.get("role") or ""
        if not isinstance(role, str):
            raise InvalidInput("a member's role must be text")
        return parse_member(f"{item['agent']}:{role}")
    raise InvalidInput("a member is AGENT[:ROLE] text or a table with agent and role")


def write_teams(store: Store, plan: TeamPlan, now: datetime) -> None:
    """Inside apply's write transaction, after the agents and before the jobs."""
    for team in plan.changed:
        team.updated_at = now
        if not store.update_team(team):
            raise Failed("the teams changed while the file was checked: run apply again")
    for team in plan.added:
        team.created_at = team.updated_at = now
        team.id = store.insert_team(team)
        if team.id is None:
            raise Failed("the teams changed while the file was checked: run apply again")
