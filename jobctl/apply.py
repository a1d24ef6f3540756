"""`jobctl apply`: make the stored jobs and agents what a jobs file says, in one transaction.

Every entry is validated (`file_entries` turns it into the JobChange `add` builds) and
compared with the stored one before anything is written; an entry equal to the stored one
is not written, so applying twice changes nothing. Agents are written before jobs, in the
same transaction. It is the bulk path: it reads the stored jobs once and writes in batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.agent_changes import build_agent
from jobctl.apply_merge import JobBuilder, check_once_time, definition, keep_fired_one_shot, merge
from jobctl.errors import Failed, InvalidInput, JobctlError, NotFound
from jobctl.file_entries import agent_entry_change, document_entries, entry_change, type_name
from jobctl.jobfile import Document, bulk_work, export_entry
from jobctl.models import Agent, AgentSpec, Job
from jobctl.progress import OnProgress, Tally, in_steps, no_progress
from jobctl.team_file import TeamPlan, plan_teams, write_teams

if TYPE_CHECKING:
    from jobctl.store.protocol import Store


@dataclass
class Plan:
    """What `apply` does: the jobs it adds, changes (new versions), removes and leaves."""

    added: list[Job] = field(default_factory=list)
    changed: list[Job] = field(default_factory=list)
    removed: list[Job] = field(default_factory=list)
    unchanged: list[Job] = field(default_factory=list)
    # Stored jobs the file does not list, kept because --prune was not given.
    not_in_file: list[str] = field(default_factory=list)
    # Changed jobs whose schedule or state changed: their schedule columns are rewritten.
    retimed: set[str] = field(default_factory=set)
    agents: AgentPlan = field(default_factory=lambda: AgentPlan())
    teams: TeamPlan = field(default_factory=TeamPlan)

    @property
    def has_changes(self) -> bool:
        changes = self.added or self.changed or self.removed
        return bool(changes or self.agents.has_changes or self.teams.has_changes)

    def names(self) -> dict[str, Any]:
        return {
            "added": [job.name for job in self.added],
            "changed": [job.name for job in self.changed],
            "removed": [job.name for job in self.removed],
            "unchanged": [job.name for job in self.unchanged],
            "agents": self.agents.names(),
            "teams": self.teams.names(),
        }


@dataclass
class AgentPlan:
    """What `apply` does to agent profiles; written before the jobs that may use them."""

    added: list[Agent] = field(default_factory=list)
    changed: list[Agent] = field(default_factory=list)
    removed: list[Agent] = field(default_factory=list)
    unchanged: list[Agent] = field(default_factory=list)
    # Stored agents the file does not list, kept (no --prune, or a job still uses them).
    not_in_file: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def names(self) -> dict[str, list[str]]:
        return {
            "added": [agent.name for agent in self.added],
            "changed": [agent.name for agent in self.changed],
            "removed": [agent.name for agent in self.removed],
            "unchanged": [agent.name for agent in self.unchanged],
        }


def plan_apply(
    store: Store,
    doc: Document,
    now: datetime,
    *,
    prune: bool = False,
    on_progress: OnProgress = no_progress,
) -> Plan:
    """Validate every entry and compare it with the stored jobs; nothing is written.

    Errors name the entry (`jobs[3] ('nightly'): ...`) and keep the exit code of their kind.
    """
    entries = document_entries(doc)
    stored = {job.name: job for job in store.all_jobs()}
    plan = Plan()
    stored_agents = {agent.name: agent for agent in store.all_agents()}
    listed_agents = _plan_agents(plan.agents, document_entries(doc, "agents"), stored_agents)
    agents = set(stored_agents) | listed_agents
    teams = plan_teams(plan.teams, document_entries(doc, "teams"), store.all_teams(), agents)
    builder = JobBuilder(now)
    seen: dict[str, int] = {}
    checked = Tally("checking", len(entries), on_progress)
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"jobs[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
        try:
            if not isinstance(entry, Mapping):
                raise InvalidInput(f"an entry must be a table, not {type_name(entry)}")
            if isinstance(name, str) and name in seen:
                raise InvalidInput(f"duplicate name: jobs[{seen[name]}] has it too")
            _plan_entry(
                plan,
                entry,
                stored.get(name) if isinstance(name, str) else None,
                (agents, teams),
                builder,
            )
        except JobctlError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        seen[str(name)] = index
        checked.every_step(index)
    missing = sorted(name for name in stored if name not in seen)
    if prune:
        plan.removed = [stored[name] for name in missing]
        _refuse_busy(store, plan.removed)
    else:
        plan.not_in_file = missing
    if "agents" in doc:  # a file from before agents were exported says nothing about them
        # with --prune, the file's jobs are all the jobs there will be
        remaining = [*plan.added, *plan.changed, *plan.unchanged]
        used = {job.spec.agent for job in remaining if isinstance(job.spec, AgentSpec)}
        for name in sorted(set(stored_agents) - listed_agents):
            if prune and name not in used:
                plan.agents.removed.append(stored_agents[name])
            else:
                plan.agents.not_in_file.append(name)
    return plan


def _plan_agents(plan: AgentPlan, entries: list[object], stored: Mapping[str, Agent]) -> set[str]:
    """Validate the `[[agents]]` entries into the plan; returns the names the file lists."""
    listed: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"agents[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
        try:
            if not isinstance(entry, Mapping):
                raise InvalidInput(f"an entry must be a table, not {type_name(entry)}")
            if isinstance(name, str) and name in listed:
                raise InvalidInput(f"duplicate name: agents[{listed[name]}] has it too")
            new = build_agent(agent_entry_change(entry))
        except JobctlError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        listed[new.name] = index
        old = stored.get(new.name)
        if old is None:
            plan.added.append(new)
        elif (old.kind, old.config) == (new.kind, new.config):
            plan.unchanged.append(old)
        else:
            new.id, new.created_at = old.id, old.created_at
            plan.changed.append(new)
    return set(listed)


def _plan_entry(
    plan: Plan,
    entry: Mapping[str, object],
    old: Job | None,
    known: tuple[set[str], set[str]],
    builder: JobBuilder,
) -> None:
    """`known`: the names of the agents and of the teams there will be."""
    if old is not None and entry == export_entry(old) and _agent_known(old, known):
        # Exactly what export writes for the stored job: unchanged, without rebuilding it.
        plan.unchanged.append(old)
        return
    now = builder.now
    new = builder.build(entry_change(entry))
    check_once_time(new, old, now)
    if not _agent_known(new, known):
        team = new.spec.team if isinstance(new.spec, AgentSpec) else None
        if team:
            raise NotFound(f"no team named {team!r}: add it with `jobctl team add {team} ...`")
        name = new.spec.agent if isinstance(new.spec, AgentSpec) else None
        raise NotFound(f"no agent named {name!r}: add it with `jobctl agent add {name} ...`")
    if old is None:
        plan.added.append(new)
        return
    keep_fired_one_shot(new, old, now)
    if definition(new) == definition(old):
        plan.unchanged.append(old)
        return
    job, retimed = merge(old, new, now)
    plan.changed.append(job)
    if retimed:
        plan.retimed.add(job.name)


def _agent_known(job: Job, known: tuple[set[str], set[str]]) -> bool:
    agents, teams = known
    if not isinstance(job.spec, AgentSpec):
        return True
    if job.spec.team:
        return job.spec.team in teams
    return job.spec.agent in agents


def _refuse_busy(store: Store, removed: list[Job]) -> None:
    if not removed:
        return
    busy = store.job_ids_in_flight()
    for job in removed:
        if job.id in busy:
            raise Failed(
                f"job {job.name!r} is not in the file but has a run in flight: wait for it, "
                f"or remove it with `jobctl rm --force {job.name}`"
            )


def apply_plan(
    store: Store, plan: Plan, now: datetime, on_progress: OnProgress = no_progress
) -> None:
    """Write the plan in one transaction; a plan with no changes writes nothing.

    The plan was made from a snapshot: if another process added, renamed or removed one of
    its jobs meanwhile, nothing is written and the caller is asked to apply again.
    """
    if not plan.has_changes:
        return
    jobs = len(plan.removed) + len(plan.changed) + len(plan.added)
    written = Tally("writing", jobs, on_progress)
    with store.write():
        _write_agents(store, plan.agents, now)  # first: the jobs may prompt them
        write_teams(store, plan.teams, now)  # then: their members are agents
        _delete_jobs(store, plan.removed)
        written.add(len(plan.removed))
        _update_jobs(store, plan.changed, plan.retimed, now, written)
        _insert_jobs(store, plan.added, now, written)
        _delete_agents(store, plan.agents.removed)


def _changed_meanwhile() -> Failed:
    return Failed(
        "the jobs changed while the file was checked (another jobctl wrote to the "
        "database): nothing was applied; run apply again"
    )


def _write_agents(store: Store, plan: AgentPlan, now: datetime) -> None:
    for agent in plan.changed:
        agent.updated_at = now
        if not store.update_agent(agent):
            raise _changed_meanwhile()
    for agent in plan.added:
        agent.created_at = agent.updated_at = now
        agent.id = store.insert_agent(agent)
        if agent.id is None:
            raise _changed_meanwhile()


def _delete_agents(store: Store, agents: list[Agent]) -> None:
    """After the jobs are written: an agent is removed only while no job prompts it."""
    for agent in agents:
        assert agent.id is not None
        if not store.delete_agent_if_unused(agent.id):
            raise _changed_meanwhile()


def _delete_jobs(store: Store, jobs: list[Job]) -> None:
    if not jobs:
        return
    # Again inside the write transaction: the daemon may have claimed a run since the plan.
    _refuse_busy(store, jobs)
    if store.delete_jobs_matching(jobs) != len(jobs):
        raise _changed_meanwhile()


def _update_jobs(
    store: Store, jobs: list[Job], retimed: set[str], now: datetime, written: Tally
) -> None:
    """Definitions only, unless the file changed a job's schedule or state: what the daemon
    wrote between planning and writing (a fire, an auto-pause) is otherwise kept."""
    for timing in (False, True):
        batch = [job for job in jobs if (job.name in retimed) == timing]
        for job in batch:
            job.updated_at = now
        for part in in_steps(batch):
            if store.update_jobs_matching(part, timing=timing) != len(part):
                raise _changed_meanwhile()
            written.add(len(part))


def _insert_jobs(store: Store, jobs: list[Job], now: datetime, written: Tally) -> None:
    for job in jobs:
        job.created_at = job.updated_at = now
    for part in in_steps(jobs):
        if not store.insert_jobs(part):
            raise _changed_meanwhile()
        written.add(len(part))


def apply_document(
    store: Store,
    doc: Document,
    now: datetime,
    *,
    prune: bool = False,
    dry_run: bool = False,
    on_progress: OnProgress = no_progress,
) -> Plan:
    """Plan, then (unless dry_run) write the plan in one transaction."""
    with bulk_work():
        plan = plan_apply(store, doc, now, prune=prune, on_progress=on_progress)
        if not dry_run:
            apply_plan(store, plan, now, on_progress)
    return plan
