"""Claiming: what is due, and a `running` row written for every fire before any starts.

One short write transaction claims every due slot and every queued run that may start;
slots missed while no daemon watched are recorded and caught up by the job's policy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from jobctl.engine.budget import over_budget, skip_over_budget
from jobctl.engine.gaps import TINY, walk_gap
from jobctl.engine.unserved import record_missed
from jobctl.models import (
    AgentSpec,
    Job,
    JobAdvance,
    JobState,
    NewRun,
    Overlap,
    RunStatus,
    RunTrigger,
    ScheduleKind,
    UnreadableJob,
)
from jobctl.models import Owner as Owner
from jobctl.schedule import Schedule
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from jobctl.engine.notice import Notice
    from jobctl.models import Agent, Team
    from jobctl.store import Store

MAX_SLOTS_PER_TICK = 10  # a job far behind catches up over a few ticks, never floods one
MAX_CATCHUP_ALL = 100  # `--catchup all` fires at most this many missed slots per gap
CLAIM_BATCH = 200  # jobs claimed per step: a burst starts firing before all of it is claimed

# Why slots passed unfired (the end of a missed row's error text and of its log line).
NO_DAEMON = "no daemon was running"
CANNOT_WRITE = "the daemon could not write the database"

# Runs somebody asked for (a webhook, `run --queue`): with overlap skip they are skipped,
# not kept waiting, while another run of the job is in flight.
ASKED_FOR = frozenset({RunTrigger.WEBHOOK, RunTrigger.MANUAL, RunTrigger.RERUN})
IN_FLIGHT_SKIP = "skipped: a run of this job was in flight (overlap skip)"

# Queued runs of these triggers are skipped while their job is paused; a person's are not.
AUTOMATIC = frozenset(
    {RunTrigger.SCHEDULE, RunTrigger.CATCHUP, RunTrigger.WEBHOOK, RunTrigger.CHAIN}
)


@dataclass
class Claim:
    """A run row written as `running`, ready to fire."""

    run_id: int
    job: Job
    trigger: RunTrigger
    attempt: int
    scheduled_for: datetime
    claimed_at: datetime
    delay: float = 0.0  # seconds from made_at to wait before firing (jitter, claimed ahead)
    payload: str | None = None
    reserved_by: Owner | None = None  # `jobctl run` keeps its own retries
    agent: Agent | None = None  # for agent jobs, loaded when the run is claimed
    team: Team | None = None  # for a team's jobs, loaded when the run is claimed ...
    team_agents: dict[str, Agent] = field(default_factory=dict)  # ... with its members' agents
    # A team's run approved at an approval point: the steps it recorded before, and when it
    # first started (it goes on from the step after the approval).
    resume_steps: list[dict[str, Any]] | None = None
    resume_started_at: datetime | None = None
    output_seq: int = 0  # the run's pieces of output stored before (a run taken up again)
    last_output: str = ""  # the previous successful answer, for {last_output}
    payload_type: str | None = None  # the webhook's Content-Type, kept for --forward-payload
    made_at: float = field(default_factory=time.monotonic)  # when the claim was made

    @property
    def timeout(self) -> float:
        return float(self.job.effective_policies().timeout)


@dataclass
class Step:
    """What one claim step did, for the daemon to fire and to log."""

    claims: list[Claim] = field(default_factory=list)
    skipped: list[tuple[str, datetime, str]] = field(default_factory=list)
    queued: list[tuple[str, datetime]] = field(default_factory=list)
    missed: list[tuple[str, int, datetime, datetime, str]] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)
    over_budget: list[tuple[str, datetime, str]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)  # to send (budgets)
    already: list[tuple[str, datetime]] = field(default_factory=list)  # slots with a row before
    # Queued runs are due but wait for a run in flight (or were queued behind one now):
    # the end of a run may let one start.
    waiting: bool = False
    # Every slot up to then that could be claimed was (claiming ahead, not cut short by
    # the batch limit): a later slot at or before it waits for a run in flight, and is
    # decided when it comes.
    claimed_until: datetime | None = None


def claim_due(
    store: Store,
    now: datetime,
    *,
    awake_since: datetime,
    owner: Owner,
    limit: int = CLAIM_BATCH,
    gap_cause: str = NO_DAEMON,
    queues: Sequence[str] = (),
    ahead: float = 0.0,
) -> Step:
    """Claim every due slot and every queued run that may start, in one transaction, of
    the jobs on `queues` (empty: every queue).

    Slots before `awake_since` passed while no daemon was watching: they are missed (one
    row per gap, `gap_cause` saying why) and handled by the job's catch-up policy; later
    slots are due, maybe late. With `ahead`, the slots of the next `ahead` seconds are
    claimed too, each fired at its time (`Claim.delay`), unless a run of the job is in
    flight: the overlap policy is then decided at the slot, as always.
    """
    horizon = now + timedelta(seconds=ahead)
    with store.write():
        claiming = Claiming(
            store,
            now,
            owner,
            awake_since=awake_since,
            gap_cause=gap_cause,
            ahead_until=horizon if ahead else None,
        )
        due = store.due_jobs(horizon, limit, queues)
        claiming.active = store.running_counts([job.id for job in due if job.id is not None])
        for job in due:
            claiming.claim_job(job)
        claiming.write_claims()
        claiming.start_queued(queues)
    if ahead and len(due) < limit:
        claiming.step.claimed_until = horizon
    return claiming.step


@dataclass
class _Row:
    """A run row a claim will write once its job has moved on (`listed`: logged in the
    step as skipped or queued)."""

    run: NewRun
    job_name: str
    claim: Claim | None = None  # a `running` row's claim, given the row's id once written
    listed: bool = True


@dataclass
class _Plan:
    """One job's claim: where it moves on to, and the rows (or rarer writes, in order)
    written if it does."""

    job: Job
    advance: JobAdvance
    writes: list[_Row | Callable[[], None]] = field(default_factory=list)


@dataclass
class Claiming:
    """One claim transaction: what every claiming rule needs, in one place.

    The store it writes in, the moment it claims for, who claims, since when a daemon has
    been watching (earlier slots are a gap) and why a gap's slots passed; `active` counts
    each job's runs in flight and grows as runs are claimed, so the overlap policy sees
    them; `step` collects what was claimed, skipped, queued, missed and paused.

    Each job's slots are planned first, with no write; `write_claims` then moves every
    planned job on in one statement and writes the rows of those that moved (a job another
    daemon moved on meanwhile writes nothing) in a few more, whatever their number.
    """

    store: Store
    now: datetime
    owner: Owner
    awake_since: datetime
    gap_cause: str = NO_DAEMON
    active: dict[int, int] = field(default_factory=dict)
    ahead_until: datetime | None = None  # claim slots up to then, fired at their time
    step: Step = field(default_factory=Step)
    _plans: list[_Plan] = field(default_factory=list)
    _writes: list[_Row | Callable[[], None]] = field(default_factory=list)
    _clock: tuple[datetime, float] | None = None  # (utcnow, monotonic) of a claim ahead

    def claim_job(self, job: Job | UnreadableJob) -> None:
        """Plan one job's slots; a job that cannot be scheduled is paused, not retried
        forever."""
        if isinstance(job, UnreadableJob):
            self._pause_broken(job.id, job.name, job.error)
            return
        assert job.id is not None
        following: datetime | None = None
        try:
            timetable = job.build_schedule()
            if timetable is not None and job.next_run_at is not None:
                # Fails here, before anything is planned; the planning reuses it.
                following = timetable.next_after(job.next_run_at)
        except Exception as exc:  # a broken row must not stop every other job from firing
            self._pause_broken(job.id, job.name, exc)
            return
        self._writes = []
        if timetable is None or job.next_run_at is None or job.next_run_at >= self.awake_since:
            self._plan_slots(job, timetable, following)
            return
        try:  # a gap walks many slots: nothing of it is written if that fails
            self._plan_slots(job, timetable, following)
        except Exception as exc:
            self._pause_broken(job.id, job.name, exc)

    def _pause_broken(self, job_id: int, name: str, exc: Exception) -> None:
        reason = f"paused: its schedule could not be computed ({exc})"
        self.store.pause_unschedulable(job_id, reason[:300])
        self.step.broken.append((name, reason))

    def _plan_slots(self, job: Job, timetable: Schedule | None, following: datetime | None) -> None:
        """Plan firing (or skipping, or queueing) the job's due slots, at most a few per
        step, and moving the job on to its next slot; a gap before them is handled first.
        `following` is the slot after the job's next_run_at, computed already."""
        assert job.id is not None and job.next_run_at is not None
        slot: datetime | None = job.next_run_at
        last_slot = job.last_slot_at
        if timetable is None:  # a manual job with a stale next_run_at: nothing to fire
            slot = None
        elif slot is not None and slot < self.awake_since:
            slot, last_slot = self._handle_gap(job, timetable, slot)
        fired = 0
        while slot is not None and self._due(job, slot) and fired < MAX_SLOTS_PER_TICK:
            self._fire_or_skip(job, RunTrigger.SCHEDULE, slot)
            last_slot = slot
            fired += 1
            if timetable is None:
                slot = None
            elif slot == job.next_run_at:
                slot = following
            else:
                slot = timetable.next_after(slot)
        if slot == job.next_run_at and not self._writes:
            return  # its slot is ahead, and a run of it is in flight: decided at the slot
        once_done = job.schedule_kind == ScheduleKind.ONCE and slot is None
        advance = JobAdvance(
            job.id,
            claimed_next_run_at=job.next_run_at,
            next_run_at=slot,
            last_slot_at=last_slot,
            state=JobState.COMPLETED if once_done else job.state,
        )
        self._plans.append(_Plan(job, advance, self._writes))

    def _due(self, job: Job, slot: datetime) -> bool:
        """The slot is claimed now: it has come, or it comes soon and no run of the job is
        in flight (an overlap policy is decided when the slot comes, never ahead)."""
        if slot <= self.now:
            return True
        if self.ahead_until is None or slot > self.ahead_until:
            return False
        assert job.id is not None
        return not self.active.get(job.id) or job.effective_policies().overlap == Overlap.ALLOW

    def _fire_or_skip(self, job: Job, trigger: RunTrigger, slot: datetime) -> None:
        """Apply the overlap policy to one slot: claim it, queue it, or record it skipped."""
        assert job.id is not None
        overlap = job.effective_policies().overlap
        if self.active.get(job.id) and overlap != Overlap.ALLOW:
            if overlap == Overlap.QUEUE and not self._queued(job.id):
                self._writes.append(
                    _Row(NewRun(job.id, trigger, RunStatus.QUEUED, slot, due_at=slot), job.name)
                )
                return
            error = "skipped: the previous run was still running (overlap skip)"
            self._writes.append(
                _Row(NewRun(job.id, trigger, RunStatus.SKIPPED, slot, error=error), job.name)
            )
            return
        if isinstance(job.spec, AgentSpec) and self._skip_over_budget(job, trigger, slot):
            return  # (only an agent job has a budget)
        claim = new_claim(job, trigger, slot, self.now, attempt=1)
        if slot > self.now:  # claimed ahead (by the daemon, on the real clock): fired at it
            if self._clock is None:  # read once a step: the same instant on both clocks
                self._clock = (utcnow(), time.monotonic())
            wall, claim.made_at = self._clock
            claim.delay += max(0.0, (slot - wall).total_seconds())
        self._writes.append(
            _Row(
                NewRun(job.id, trigger, RunStatus.RUNNING, slot, owner=self.owner), job.name, claim
            )
        )
        self.active[job.id] = self.active.get(job.id, 0) + 1

    def _queued(self, job_id: int) -> bool:
        """A run of the job waits in the queue, or is planned to (a retry does not count)."""
        planned = any(
            isinstance(write, _Row) and write.run.status == RunStatus.QUEUED
            for write in self._writes
        )
        return planned or self.store.has_queued(job_id)

    def _skip_over_budget(self, job: Job, trigger: RunTrigger, slot: datetime) -> bool:
        use = over_budget(self.store, job, self.now)
        if use is None:
            return False

        def skip() -> None:
            notice = skip_over_budget(self.store, job, trigger, slot, self.now, use)
            self.step.over_budget.append((job.name, slot, use.reason()))
            if notice is not None:
                self.step.notices.append(notice)

        self._writes.append(skip)
        return True

    def _handle_gap(
        self, job: Job, timetable: Schedule, first: datetime
    ) -> tuple[datetime | None, datetime | None]:
        """Plan recording the slots in [first, awake_since) as missed and firing catch-up
        runs.

        Returns the first slot at or after awake_since and the last slot handled.
        """
        job_id = job.id
        assert job_id is not None
        policy = job.effective_policies()
        window = timedelta(seconds=policy.catchup_window)
        keep = {"latest": 1, "all": MAX_CATCHUP_ALL, "skip": 0}[policy.catchup]
        gap = walk_gap(timetable, first, self.awake_since, self.now - window, keep)
        catchups = gap.recent
        missed_count = gap.count - len(catchups)
        if missed_count > 0:
            self._writes.append(
                partial(
                    self._record_missed,
                    job,
                    first,
                    missed_count,
                    gap.newest_missed or first,
                    estimated=gap.estimated,
                )
            )
        for index, slot in enumerate(catchups):
            if index and policy.overlap != Overlap.ALLOW:
                # `--catchup all` fires every slot, one after another unless overlap allows more.
                queued = NewRun(job_id, RunTrigger.CATCHUP, RunStatus.QUEUED, slot, due_at=slot)
                self._writes.append(_Row(queued, job.name, listed=False))
            else:
                self._fire_or_skip(job, RunTrigger.CATCHUP, slot)
        return timetable.next_after(self.awake_since - TINY), gap.last

    def _record_missed(
        self, job: Job, first: datetime, count: int, last_missed: datetime, *, estimated: bool
    ) -> None:
        """A gap's `count` slots from `first` to `last_missed` missed: one row (after a
        queue nobody served, the sweeps' open row stands for these slots too)."""
        record_missed(
            self.store,
            job,
            first,
            last_missed,
            count,
            now=self.now,
            cause=self.gap_cause,
            estimated=estimated,
        )
        self.step.missed.append((job.name, count, first, last_missed, self.gap_cause))

    def write_claims(self) -> None:
        """Move every planned job on in one statement, then write the rows of those that
        moved, in the order planned (their ids follow it)."""
        plans, self._plans = self._plans, []
        if not plans:
            return
        moved = self.store.advance_jobs([plan.advance for plan in plans])
        rows: list[_Row] = []
        for plan in plans:
            if plan.advance.job_id not in moved:
                continue  # another daemon moved it on: its slots are that daemon's
            for write in plan.writes:
                if isinstance(write, _Row):
                    rows.append(write)
                else:
                    self._insert(rows)
                    rows = []
                    write()
        self._insert(rows)
        completed = [
            plan.advance.job_id
            for plan in plans
            if plan.advance.state == JobState.COMPLETED and plan.advance.job_id in moved
        ]
        if completed:  # a one-shot fired its slot: it is done
            self.store.jobs_completed(completed)

    def _insert(self, rows: list[_Row]) -> None:
        """Write planned rows in one batch; claims get their ids, skips are counted."""
        if not rows:
            return
        ids = self.store.insert_runs([row.run for row in rows], self.now)
        skipped: dict[int, int] = {}
        for run_id, row in zip(ids, rows, strict=True):
            run = row.run
            if run_id is None:  # its slot has a row already: fired (or decided) before
                self.step.already.append((row.job_name, run.scheduled_for))
                continue
            if row.claim is not None:
                row.claim.run_id = run_id
                self.step.claims.append(prepare(self.store, row.claim))
            elif run.status == RunStatus.SKIPPED:
                skipped[run.job_id] = skipped.get(run.job_id, 0) + 1
                self.step.skipped.append((row.job_name, run.scheduled_for, run.trigger))
            else:
                self.step.waiting = True  # queued behind a run in flight
                if row.listed:
                    self.step.queued.append((row.job_name, run.scheduled_for))
        if skipped:
            self.store.count_skipped_jobs(skipped)

    def start_queued(self, queues: Sequence[str] = ()) -> None:
        """Start queued runs (overlap queue, retries, `run --queue`) whose time has come."""
        store, now = self.store, self.now
        waiting = store.due_queued_runs(now, queues)
        unknown = {queued.job.id for queued in waiting} - self.active.keys()
        if unknown:  # how many runs of their jobs are in flight, unless known already
            self.active.update(store.running_counts([i for i in unknown if i is not None]))
            self.active.update((i, 0) for i in unknown if i is not None and i not in self.active)
        for queued in waiting:
            job = queued.job
            assert job.id is not None
            if queued.trigger in AUTOMATIC and job.state == JobState.PAUSED:
                store.skip_queued_run(queued.run_id, now, "skipped: the job was paused")
                store.count_skipped(job.id)
                continue
            use = over_budget(store, job, now) if queued.trigger in AUTOMATIC else None
            if use is not None:  # a webhook's or a chain's call counts against it too
                store.skip_queued_run(queued.run_id, now, use.reason())
                store.count_skipped(job.id)
                continue
            overlap = job.effective_policies().overlap
            if self.active.get(job.id) and overlap != Overlap.ALLOW:
                if overlap == Overlap.SKIP and queued.trigger in ASKED_FOR:
                    # Re-checked as it starts: a slot claimed meanwhile is in flight now.
                    store.skip_queued_run(queued.run_id, now, IN_FLIGHT_SKIP)
                    store.count_skipped(job.id)
                self.step.waiting = True
                continue  # otherwise it waits for the run in flight
            if not store.start_queued_run(queued.run_id, now, self.owner):
                continue  # another daemon started it
            claim = Claim(
                queued.run_id,
                job,
                queued.trigger,
                queued.attempt,
                queued.scheduled_for,
                now,
                payload=queued.payload,
                payload_type=queued.payload_type,
            )
            self.step.claims.append(prepare(store, claim))
            self.active[job.id] = self.active.get(job.id, 0) + 1


def claim_run(
    store: Store,
    job: Job,
    trigger: RunTrigger,
    slot: datetime,
    now: datetime,
    owner: Owner,
    *,
    attempt: int,
    payload: str | None = None,
) -> Claim:
    """A new `running` row for `slot`, as a Claim ready to fire (jittered if scheduled)."""
    assert job.id is not None
    claim = new_claim(job, trigger, slot, now, attempt=attempt, payload=payload)
    claim.run_id = store.insert_run(
        job_id=job.id,
        trigger=trigger,
        status=RunStatus.RUNNING,
        scheduled_for=slot,
        now=now,
        attempt=attempt,
        owner=owner,
    )
    return prepare(store, claim)


def new_claim(
    job: Job,
    trigger: RunTrigger,
    slot: datetime,
    now: datetime,
    *,
    attempt: int,
    payload: str | None = None,
) -> Claim:
    """The Claim of a run about to be written (its id is set once it is), jittered if
    scheduled."""
    jitter = float(job.effective_policies().jitter or 0)
    scheduled = trigger in (RunTrigger.SCHEDULE, RunTrigger.CATCHUP)
    delay = random.uniform(0, jitter) if jitter and scheduled else 0.0
    return Claim(0, job, trigger, attempt, slot, now, delay, payload)


def prepare(store: Store, claim: Claim) -> Claim:
    """Load what an agent run needs from the store while the claim's transaction is open."""
    spec = claim.job.spec
    if not isinstance(spec, AgentSpec):
        return claim
    from jobctl.prompts import uses

    if spec.team:
        claim.team = store.team_named(spec.team)
        for member in claim.team.members if claim.team is not None else ():
            found = store.find_agent(member.agent)
            if found is not None:
                claim.team_agents[member.agent] = found
    else:
        claim.agent = store.find_agent(spec.agent)
    if claim.agent is not None:
        claim.job.use_agent_timeout(claim.agent.timeout)  # so claim.timeout is the run's
    if uses(spec.prompt, "last_output") and claim.job.id is not None:  # ad hoc: no history
        claim.last_output = store.last_success_output(claim.job.id) or ""
    return claim


def payload_details(payload: str | None, payload_type: str | None) -> dict[str, str] | None:
    """What a run row keeps of the payload it fires with (in its details)."""
    if payload is None:
        return None
    details: dict[str, str] = {"payload": payload}
    if payload_type:
        details["payload_type"] = payload_type
    return details
