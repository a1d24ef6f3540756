"""Teams: named, ordered lists of agents that answer a team job's prompt in turn (adding,
editing, removing and rendering them; the run itself is `jobctl.actions.team`'s).

A member is written `AGENT` or `AGENT:ROLE TEXT`; each member's turn is a step of the run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from jobctl.agent_changes import validate_agent_name
from jobctl.errors import Failed, InvalidInput, NotFound
from jobctl.models import Member, MemberDict, Team
from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.store.protocol import Store

MAX_MEMBERS = 32
APPROVE = "approve"  # `--member approve:TEXT`: an approval point, not an agent
MAX_ROLE = 8000


def parse_member(text: str) -> Member:
    """`AGENT`, `AGENT:ROLE TEXT` or `approve:TEXT` (an approval point) as a Member (the
    agent is checked by the caller)."""
    agent, _, role = text.partition(":")
    agent = agent.strip()
    if agent == APPROVE:
        if not role.strip():
            raise InvalidInput(
                "invalid --member approve: give the text the people asked are shown, "
                "like approve:'Post this to Slack?'"
            )
        if len(role) > MAX_ROLE:
            raise InvalidInput(f"invalid --member approve: its text is over {MAX_ROLE} characters")
        return Member(agent="", approve=role.strip())
    if not agent:
        raise InvalidInput(f"invalid --member {text!r}: give AGENT or AGENT:ROLE TEXT")
    validate_agent_name(agent)
    if len(role) > MAX_ROLE:
        raise InvalidInput(f"invalid --member {agent}: its role text is over {MAX_ROLE} characters")
    return Member(agent=agent, role=role.strip())


def build_members(store: Store, texts: Sequence[str]) -> list[Member]:
    """The members, in order; every agent must exist."""
    if not texts:
        raise InvalidInput("a team needs at least one --member AGENT[:ROLE TEXT]")
    if len(texts) > MAX_MEMBERS:
        raise InvalidInput(f"a team has at most {MAX_MEMBERS} members")
    members = [parse_member(text) for text in texts]
    if all(member.approve is not None for member in members):
        raise InvalidInput("a team needs at least one agent among its members")
    for member in members:
        if member.approve is None and store.agent_named(member.agent) is None:
            raise NotFound(
                f"no agent named {member.agent!r}: add it with `jobctl agent add {member.agent} ...`"
            )
    return members


def validate_team_name(name: str) -> str:
    try:
        return validate_agent_name(name)
    except InvalidInput:
        raise InvalidInput(
            f"invalid team name {name!r}: use 1-64 characters from a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        ) from None


def get_team(store: Store, name: str) -> Team:
    team = store.team_named(name)
    if team is None:
        names = [team.name for team in store.all_teams()]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f": did you mean {close[0]!r}?" if close else " (see `jobctl team list`)"
        raise NotFound(f"no team named {name!r}{hint}")
    return team


def parse_approval_timeout(text: str | None) -> float | None:
    """`--approval-timeout D` in seconds; None when not given ('' clears: the default)."""
    if text is None or text == "":
        return None
    from jobctl.timeutil import parse_duration

    seconds = parse_duration(text, what="--approval-timeout").total_seconds()
    if seconds <= 0 or seconds > 366 * 86400:
        raise InvalidInput(f"invalid --approval-timeout {text!r}: give a duration like 24h")
    return seconds


def add_team(
    store: Store,
    name: str,
    members: Sequence[str],
    now: datetime,
    approval_timeout: str | None = None,
) -> Team:
    team = Team(
        name=validate_team_name(name),
        approval_timeout=parse_approval_timeout(approval_timeout),
        created_at=now,
        updated_at=now,
    )
    with store.write():
        team.members = build_members(store, members)
        if store.team_named(team.name) is not None:
            raise InvalidInput(
                f"a team named {team.name!r} already exists: use "
                f"`jobctl team edit {team.name}` to change it"
            )
        team.id = store.insert_team(team)
    return team


def edit_team(
    store: Store,
    name: str,
    members: Sequence[str],
    now: datetime,
    approval_timeout: str | None = None,
) -> Team:
    """The members given replace the team's members, in the order given; the approval
    timeout changes when given ('' sets the default back)."""
    if not members and approval_timeout is None:
        raise InvalidInput("nothing to change: give --member ... or --approval-timeout D")
    with store.write():
        team = get_team(store, name)
        if members:
            team.members = build_members(store, members)
        if approval_timeout is not None:
            team.approval_timeout = parse_approval_timeout(approval_timeout)
        team.updated_at = now
        store.update_team(team)
    return team


def teams_using_agent(store: Store, agent: str) -> list[str]:
    """Names of the teams that have `agent` as a member."""
    return [
        team.name
        for team in store.all_teams()
        if any(member.agent == agent and member.approve is None for member in team.members)
    ]


@dataclass
class RemovedTeam:
    team: str
    paused_jobs: list[str]


def remove_teams(
    store: Store, names: Iterable[str], *, force: bool, now: datetime
) -> list[RemovedTeam]:
    """Remove every named team or none: one still used by a job needs `force`, which pauses
    those jobs, saying why."""
    removed: list[RemovedTeam] = []
    with store.write():
        teams = [get_team(store, name) for name in dict.fromkeys(names)]
        users = {team.name: store.jobs_using_team(team.name) for team in teams}
        if not force:
            for team in teams:
                jobs = users[team.name]
                if jobs:
                    which = "them" if len(jobs) > 1 else "it"
                    raise Failed(
                        f"team {team.name!r} is used by job{'s' if len(jobs) > 1 else ''} "
                        f"{', '.join(jobs)}: change or remove {which} first, or use --force "
                        f"to remove the team and pause {which}"
                    )
        for team in teams:
            assert team.id is not None
            paused = store.pause_jobs_named(users[team.name], f"team {team.name} was removed", now)
            store.delete_team(team.id)
            removed.append(RemovedTeam(team.name, paused))
    return removed


class TeamDict(TypedDict):
    """The JSON form of a team."""

    name: str
    members: list[MemberDict]
    approval_timeout: float
    jobs: list[str]
    created_at: str | None
    updated_at: str | None


def team_to_dict(team: Team, jobs: list[str]) -> TeamDict:
    return {
        "name": team.name,
        "members": [member.to_dict() for member in team.members],
        "approval_timeout": team.effective_approval_timeout,
        "jobs": jobs,
        "created_at": iso_z(team.created_at),
        "updated_at": iso_z(team.updated_at),
    }


def member_text(member: Member) -> str:
    """A member as `--member` takes it."""
    if member.approve is not None:
        return f"{APPROVE}:{member.approve}"
    return f"{member.agent}:{member.role}" if member.role else member.agent
