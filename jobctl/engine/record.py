"""Recording what a fire did: the run's row, the job's counters, retries, auto-pause, chains.

Outcomes are recorded in one short write transaction per batch (group commit), after the
fires, never while one runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jobctl import runs
from jobctl.engine.adhoc import adhoc_retry_at
from jobctl.engine.claim import Claim, payload_details
from jobctl.engine.notify import Notice, after_run, approval_notice
from jobctl.models import Overlap, RunExecuted, RunStatus, RunTrigger
from jobctl.policies import backoff_delay

if TYPE_CHECKING:
    from jobctl.actions import Outcome
    from jobctl.store import Store


# A cancelled run is no failure (no retry, no auto-pause) and no success either: only the
# chains that run after any end follow it.
_NOT_FAILING = frozenset({RunStatus.SUCCEEDED, RunStatus.CANCELLED})
_CHAINS_AFTER: dict[str, tuple[str, ...]] = {
    RunStatus.SUCCEEDED: ("finished", "succeeded"),
    RunStatus.CANCELLED: ("finished",),
}


@dataclass
class Recorded:
    """What recording an outcome led to: for logging, and the notifications to send."""

    claim: Claim
    outcome: Outcome
    retry_at: datetime | None = None
    auto_paused: bool = False
    chained: list[str] = field(default_factory=list)
    notice: Notice | None = None  # what the job's --notify-on URLs are told


def record_outcomes(
    store: Store, finished: list[tuple[Claim, Outcome]], now: datetime
) -> list[Recorded]:
    """Finish many runs in one transaction (group commit): rows, counters, retries, pauses.

    The rows, their events and the jobs' counters are written a batch at a time (a few
    statements for the whole group); retries, auto-pause and chains, one at a time, only
    where they happen."""
    results = [Recorded(claim, outcome) for claim, outcome in finished]
    with store.write():
        store.lock_jobs({claim.job.id for claim, _ in finished if claim.job.id is not None})
        chained = store.any_chains()
        _record_all(store, results, now, chains=chained)
    for item in results:
        if item.outcome.status == RunStatus.WAITING:
            item.notice = approval_notice(item.claim, item.outcome)
        else:
            item.notice = after_run(item.claim, item.outcome, auto_paused=item.auto_paused)
    return results


def _record_all(store: Store, results: list[Recorded], now: datetime, *, chains: bool) -> None:
    ending: list[Recorded] = []
    for item in results:
        claim, outcome = item.claim, item.outcome
        if claim.payload is not None:  # the finished row keeps it too, for `runs rerun`
            outcome.details.update(payload_details(claim.payload, claim.payload_type) or {})
        if outcome.status == RunStatus.WAITING:  # a team's approval point: not over, no counts
            approval = outcome.details.get("approval") or {}
            store.wait_run(claim.run_id, outcome, {"step": approval.get("step")})
        else:
            ending.append(item)
    done = store.finish_runs([(item.claim.run_id, item.outcome) for item in ending])
    counted: list[Recorded] = []
    for item in ending:
        claim, outcome = item.claim, item.outcome
        if claim.run_id not in done:
            continue  # the row was marked interrupted meanwhile (or the job was removed)
        if claim.job.id is None:  # an ad hoc run: no job to count it, chain after it or pause
            item.retry_at = adhoc_retry_at(claim, outcome.status, outcome.finished_at)
            continue
        item.retry_at = schedule_retry(store, claim, outcome.status, outcome.finished_at)
        counted.append(item)
    for batch in _rounds(counted):
        _count_round(store, batch, now, chains=chains)


def _rounds(items: list[Recorded]) -> list[list[Recorded]]:
    """The runs in batches where each job appears once (in order: a job's second run of a
    group is counted after its first, as if they were recorded one by one)."""
    rounds: list[list[Recorded]] = []
    seen: dict[int | None, int] = {}
    for item in items:
        index = seen.get(item.claim.job.id, 0)  # the job's k-th run goes to round k
        seen[item.claim.job.id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(item)
    return rounds


def _count_round(store: Store, batch: list[Recorded], now: datetime, *, chains: bool) -> None:
    """The jobs' counters of one round in one statement; then auto-pause and chains."""
    executed = []
    for item in batch:
        assert item.claim.job.id is not None
        outcome = item.outcome
        final = item.retry_at is None
        executed.append(RunExecuted(item.claim.job.id, outcome.status, outcome.started_at, final))
    store.count_executed_runs(executed)
    for item in batch:
        claim, status = item.claim, item.outcome.status
        assert claim.job.id is not None
        if item.retry_at is not None:
            continue
        if status not in _NOT_FAILING:
            item.auto_paused = runs.auto_pause_if_failing(
                store, claim.job.id, claim.job.effective_policies().max_failures, now
            )
        if chains:
            item.chained = _queue_chained(store, claim, status, now)


def _queue_chained(store: Store, claim: Claim, status: str, now: datetime) -> list[str]:
    """Queue runs of the jobs that run after this one ended this way (trigger `chain`)."""
    assert claim.job.id is not None
    wanted = _CHAINS_AFTER.get(status, ("finished", "failed"))
    queued = []
    for job in store.jobs_chained_after(claim.job.id, wanted):
        assert job.id is not None
        running = store.has_running(job.id)
        if running and job.effective_policies().overlap == Overlap.SKIP:
            store.insert_run(
                job_id=job.id,
                trigger=RunTrigger.CHAIN,
                status=RunStatus.SKIPPED,
                scheduled_for=now,
                now=now,
                caused_by=claim.run_id,
                error="skipped: the previous run was still running (overlap skip)",
            )
            store.count_skipped(job.id)
            continue
        store.insert_run(
            job_id=job.id,
            trigger=RunTrigger.CHAIN,
            status=RunStatus.QUEUED,
            scheduled_for=now,
            now=now,
            due_at=now,
            caused_by=claim.run_id,
        )
        queued.append(job.name)
    return queued


def schedule_retry(
    store: Store, claim: Claim, status: str, finished_at: datetime
) -> datetime | None:
    """Queue the next attempt of a failed run if the job's retries allow; its due time."""
    if status in _NOT_FAILING:
        return None
    policy = claim.job.effective_policies()
    if claim.attempt > policy.retries:
        return None
    assert claim.job.id is not None
    delay = backoff_delay(policy.backoff, claim.attempt + 1) * random.uniform(0.8, 1.2)
    due = finished_at + timedelta(seconds=delay)
    store.insert_run(
        job_id=claim.job.id,
        trigger=RunTrigger.RETRY,
        status=RunStatus.QUEUED,
        scheduled_for=claim.scheduled_for,
        now=finished_at,
        attempt=claim.attempt + 1,
        due_at=due,
        owner=claim.reserved_by,
        details=payload_details(claim.payload, claim.payload_type),
    )
    return due


def retry_interrupted(store: Store, orphans: list[runs.Orphan], now: datetime) -> int:
    """After marking orphans interrupted, queue retries for jobs whose policy has them."""
    queued = 0
    for orphan in orphans:
        job = store.job_by_id(orphan.job_id)
        if job is None:
            continue
        claim = Claim(orphan.run_id, job, orphan.trigger, orphan.attempt, orphan.scheduled_for, now)
        if schedule_retry(store, claim, RunStatus.INTERRUPTED, now) is not None:
            queued += 1
    return queued
