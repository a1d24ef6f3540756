"""The jobs in a store: adding, editing, removing, pausing and looking them up.

The rules for what may be written live here (a name is free, an agent job's agent exists, a
chain makes no cycle, a job with a run in flight is not removed without force); the store
only reads and writes rows. Each change is one write transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.errors import Failed, InvalidInput, NotFound
from jobctl.models import ActionKind, AgentSpec, Job, JobChange, JobState

if TYPE_CHECKING:
    from jobctl.store.protocol import Store

# Reading needs only the models: what writing needs (the rules for a job's fields, its
# next run) is imported by the functions that write, so that `list` and `show` load less.

# ------------------------------------------------------------------------------ reading


def get_job(store: Store, name: str) -> Job:
    """The job named `name` (with its agent's timeout), or NotFound suggesting a name."""
    job = store.job_named(name)
    if job is None:
        raise NotFound(_not_found_message(store, name))
    load_agent_timeouts(store, [job])
    return job


def _not_found_message(store: Store, name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, store.job_names(), n=1)
    hint = f": did you mean {close[0]!r}?" if close else " (see `jobctl list`)"
    return f"no job named {name!r}{hint}"


def get_jobs(store: Store, names: Iterable[str]) -> list[Job]:
    """All the named jobs, or NotFound naming the first unknown one (nothing is changed)."""
    return [get_job(store, name) for name in dict.fromkeys(names)]


def list_jobs(store: Store, names: Iterable[str] = ()) -> list[Job]:
    """The named jobs, or every job by name."""
    wanted = list(names)
    if wanted:
        return get_jobs(store, wanted)
    jobs = store.all_jobs()
    load_agent_timeouts(store, jobs)
    return jobs


def load_agent_timeouts(store: Store, jobs: Iterable[Job]) -> None:
    """Give each agent job its agent's --timeout, which is its own when it sets none."""
    wanted = [job for job in jobs if job.action == ActionKind.AGENT]
    if not wanted:
        return
    timeouts = {agent.name: agent.timeout for agent in store.all_agents()}
    for job in wanted:
        if isinstance(job.spec, AgentSpec):
            job.use_agent_timeout(timeouts.get(job.spec.agent))


def chains_of(store: Store, job_id: int) -> list[str]:
    """`UPSTREAM:STATUS` for each job this one runs after, by name."""
    return [f"{name}:{when}" for name, when in store.upstreams_of(job_id)]


# ------------------------------------------------------------------------------ writing


def check_agent(store: Store, job: Job) -> None:
    """NotFound unless an agent job's agent exists; gives the job its agent's timeout."""
    if isinstance(job.spec, AgentSpec) and job.spec.team:
        if store.team_named(job.spec.team) is None:
            name = job.spec.team
            raise NotFound(f"no team named {name!r}: add it with `jobctl team add {name} ...`")
    elif isinstance(job.spec, AgentSpec):
        name = job.spec.agent
        agent = store.agent_named(str(name))
        if agent is None:
            raise NotFound(f"no agent named {name!r}: add it with `jobctl agent add {name} ...`")
        job.use_agent_timeout(agent.config.get("timeout"))


def insert_job(store: Store, job: Job, now: datetime) -> Job:
    """Add the job inside the caller's write transaction; its name must be free."""
    check_agent(store, job)
    if store.job_name_taken(job.name):
        raise InvalidInput(
            f"a job named {job.name!r} already exists: use `jobctl edit {job.name}` to change it"
        )
    job.created_at = job.updated_at = now
    job.id = store.insert_job(job)
    return job


def update_job(store: Store, job: Job, now: datetime) -> Job:
    """Write the job inside the caller's write transaction; a rename keeps the history."""
    check_agent(store, job)
    if store.job_name_taken(job.name, other_than=job.id):
        raise InvalidInput(f"cannot rename to {job.name!r}: a job with that name exists")
    job.updated_at = now
    store.update_job(job)
    return job


def set_chains(store: Store, job: Job, after: Iterable[tuple[str, str]]) -> None:
    """Replace the jobs this one runs after (inside the caller's transaction); no cycles."""
    assert job.id is not None
    upstreams = []
    for upstream_name, when in after:
        upstream = get_job(store, upstream_name)
        assert upstream.id is not None
        if upstream.id == job.id:
            raise InvalidInput(f"--after {upstream_name}: a job cannot run after itself")
        if _reaches(store, job.id, upstream.id):
            raise InvalidInput(
                f"--after {upstream_name}: that makes a cycle ({upstream_name} already runs "
                f"after {job.name}, directly or through other jobs)"
            )
        upstreams.append((upstream.id, when))
    store.replace_chains(job.id, upstreams)


def _reaches(store: Store, start: int, target: int) -> bool:
    """Whether `target` runs after `start`, following chains downstream."""
    seen, frontier = {start}, [start]
    while frontier:
        for downstream in store.downstream_job_ids(frontier.pop()):
            if downstream == target:
                return True
            if downstream not in seen:
                seen.add(downstream)
                frontier.append(downstream)
    return False


def add_job(store: Store, change: JobChange, now: datetime) -> Job:
    """`jobctl add`: validate the change into a new job and store it (with its chains)."""
    from jobctl.job_changes import build_job

    job = build_job(change, existing=None, now=now)
    after = change.after or ()
    with store.write():
        insert_job(store, job, now)
        if after:
            set_chains(store, job, after)
        return job


def edit_job(store: Store, name: str, change: JobChange, now: datetime) -> Job:
    """`jobctl edit`: the fields given change the stored job; the rest stays."""
    from jobctl.job_changes import build_job

    with store.write():
        existing = get_job(store, name)
        job = build_job(change, existing=existing, now=now)
        update_job(store, job, now)
        if change.after is not None:
            set_chains(store, job, change.after)
        return job


def remove_jobs(store: Store, names: Iterable[str], *, force: bool) -> list[str]:
    """Remove every named job or none; without `force`, none with a run in flight."""
    with store.write():
        jobs = get_jobs(store, names)
        if not force:
            for job in jobs:
                assert job.id is not None
                if store.count_in_flight(job.id):
                    raise Failed(
                        f"job {job.name!r} has a run in flight: wait for it, or use --force"
                    )
        store.delete_jobs(job.id for job in jobs if job.id is not None)
    return [job.name for job in jobs]


def set_paused(
    store: Store,
    names: Iterable[str],
    paused: bool,
    now: datetime,
    *,
    reason: str | None = None,
) -> list[Job]:
    """Pause or resume the named jobs; resume recomputes the next run and resets failures."""
    from jobctl.jobs import compute_next_run

    changed = []
    with store.write():
        jobs = get_jobs(store, names)
        for job in jobs:
            if job.state == JobState.COMPLETED:
                raise Failed(
                    f"job {job.name!r} is completed (a one-shot that fired): "
                    f"give it a new time with `jobctl edit {job.name} --at TIME`"
                )
        for job in jobs:
            if paused:
                job.state, job.paused_reason, job.next_run_at = JobState.PAUSED, reason, None
            elif job.state == JobState.PAUSED:
                job.state, job.paused_reason, job.consecutive_failures = JobState.ENABLED, None, 0
                # After its last slot, which the daemon may have claimed ahead of now.
                job.next_run_at = compute_next_run(job, now)
                job.last_slot_at = None
            update_job(store, job, now)
            changed.append(job)
    return changed
