"""Slots of queues that no live daemon fires: recorded `missed` while the queue is unserved.

On PostgreSQL a daemon fires only its queues; a queue left without a live daemon would see
its slots pass unfired. Every live daemon sweeps about once a lease: a job on such a queue
whose next slot is more than a lease old has its passed slots recorded missed and moves on
to its next slot (a conditional update on next_run_at, its row locked and others' locked
rows passed over: one sweeper wins). One missed row stands for the whole spell: later
sweeps extend it, and so does the gap walk of the daemon that comes back for the queue
(which still fires catch-ups, per the job's policy, of what passed since the last sweep).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jobctl.engine.gaps import TINY, walk_gap
from jobctl.models import JobAdvance, JobState, RunStatus, RunTrigger, ScheduleKind, UnreadableJob
from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.models import Job
    from jobctl.store import Store

SWEEP_BATCH = 200  # jobs per sweep transaction: a big queue is swept over a few ...
SWEEP_BATCHES = 10  # ... of them a sweep, the rest at the next


def unserved_cause(queue: str) -> str:
    """Why an unserved queue's slots passed (the end of its missed row's error text)."""
    return f"no daemon serves queue {queue}"


def missed_text(count: int, first: datetime, until: datetime, cause: str) -> str:
    """A missed row's error text: `missed 3 slots from A to B: cause`."""
    slots = "slot" if count == 1 else "slots"
    return f"missed {count} {slots} from {iso_z(first)} to {iso_z(until)}: {cause}"


def record_missed(
    store: Store,
    job: Job,
    first: datetime,
    until: datetime,
    count: int,
    *,
    now: datetime,
    cause: str,
    estimated: bool = False,
    queue: str | None = None,
) -> None:
    """In the caller's transaction: `count` slots of `job` from `first` to `until` missed.

    When the job's newest run row is an unserved queue's missed row ending at the job's
    last slot (nothing ran since), it stands for these too; otherwise a new row is written (with
    `queue`: an unserved queue's, which later sweeps extend)."""
    assert job.id is not None
    spell = store.open_miss(job.id, job.last_slot_at)
    more: Mapping[str, object] = {"estimated": True} if estimated else {}
    if spell is not None:
        total = spell.count + count
        details = {"missed_count": total, "missed_until": iso_z(until), **more}
        text = missed_text(total, spell.first, until, unserved_cause(spell.queue))
        store.extend_miss(spell.run_id, details, text, now)
    else:
        details = {"missed_count": count, "missed_until": iso_z(until), "estimated": estimated}
        if queue is not None:
            details["unserved_queue"] = queue
        store.insert_run(
            job_id=job.id,
            trigger=RunTrigger.SCHEDULE,
            status=RunStatus.MISSED,
            scheduled_for=first,
            now=now,
            details=details,
            error=missed_text(count, first, until, cause),
        )
    store.count_missed(job.id, count)


@dataclass
class Sweep:
    """What one sweep found: the queues with enabled jobs and no live daemon (queue -> how
    many jobs), and the slots it recorded missed (job, count, first, last, cause)."""

    unserved: dict[str, int] = field(default_factory=dict)
    missed: list[tuple[str, int, datetime, datetime, str]] = field(default_factory=list)


def sweep_unserved(
    store: Store,
    now: datetime,
    lease: timedelta,
    *,
    limit: int = SWEEP_BATCH,
    batches: int = SWEEP_BATCHES,
) -> Sweep:
    """Record missed the passed slots of the jobs on queues no live daemon fires whose
    next slot is more than `lease` old, moving each on to its next slot: up to `limit`
    jobs a transaction, nothing written while every queue is served.

    The queues are read again in each transaction, so a daemon that joined for one
    meanwhile keeps its jobs; a job another sweeper holds or moved on is left to it."""
    sweep = Sweep(unserved=_unserved_queues(store, now))
    for _ in range(batches if sweep.unserved else 0):
        with store.write():
            sweep.unserved = _unserved_queues(store, now)
            if not sweep.unserved:
                break
            jobs = store.due_jobs(now - lease, limit, tuple(sweep.unserved))
            for job in jobs:
                if not isinstance(job, UnreadableJob):
                    _miss_passed_slots(store, job, now, sweep)
        if len(jobs) < limit:
            break
    return sweep


def _unserved_queues(store: Store, now: datetime) -> dict[str, int]:
    """Queue -> enabled jobs, of the queues no daemon live at `now` fires."""
    live = store.live_daemons(now)
    return {
        queue: count
        for queue, count in store.enabled_queue_counts().items()
        if not any(entry.serves(queue) for entry in live)
    }


def _miss_passed_slots(store: Store, job: Job, now: datetime, sweep: Sweep) -> None:
    """The job's slots before `now` missed, the job moved on to the first slot after."""
    assert job.id is not None
    try:
        timetable = job.build_schedule()
    except Exception:  # a broken row: the daemon that fires its queue pauses it
        return
    first = job.next_run_at
    if timetable is None or first is None:
        return
    gap = walk_gap(timetable, first, now, now, 0)
    until = gap.newest_missed or gap.last or first
    following = timetable.next_after(now - TINY)
    done = job.schedule_kind == ScheduleKind.ONCE and following is None
    state = JobState.COMPLETED if done else job.state
    if not store.advance_jobs([JobAdvance(job.id, first, following, until, state)]):
        return  # another sweeper, or a daemon for the queue, moved it on
    cause = unserved_cause(job.queue)
    record_missed(
        store,
        job,
        first,
        until,
        gap.count,
        now=now,
        cause=cause,
        estimated=gap.estimated,
        queue=job.queue,
    )
    if done:
        store.jobs_completed([job.id])
    sweep.missed.append((job.name, gap.count, first, until, cause))
