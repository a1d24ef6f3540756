"""Runs somebody asked for: `jobctl run` here, `run --queue` and webhooks for the daemon.

Each claims or queues in one short write transaction and applies the overlap policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.engine.claim import (
    IN_FLIGHT_SKIP,
    Claim,
    Owner,
    claim_run,
    payload_details,
    prepare,
)
from jobctl.engine.record import retry_interrupted
from jobctl.models import JobState, Overlap, RunStatus, RunTrigger

if TYPE_CHECKING:
    from jobctl.models import Job
    from jobctl.store import Store


def _get_job(store: Store, name: str) -> Job:
    """The job named `name`, or NotFound (with a "did you mean")."""
    from jobctl.catalog import get_job

    return get_job(store, name)


def start_manual(
    store: Store,
    name: str,
    now: datetime,
    owner: Owner,
    *,
    trigger: RunTrigger = RunTrigger.MANUAL,
    payload: str | None = None,
) -> Claim | int | None:
    """Claim a run of `name` now, in this process.

    Returns the Claim; the id of a `skipped` row when the overlap policy skips it; or None
    when the policy is `queue` and a run is in flight (the caller waits and tries again).
    """
    from jobctl import runs

    with store.write():
        job = _get_job(store, name)
        assert job.id is not None
        orphans = runs.mark_interrupted(store, now)
        retry_interrupted(store, orphans, now)
        overlap = job.effective_policies().overlap
        if overlap != Overlap.ALLOW and store.has_running(job.id):
            if overlap == Overlap.QUEUE:
                return None
            store.count_skipped(job.id)
            return store.insert_run(
                job_id=job.id,
                trigger=trigger,
                status=RunStatus.SKIPPED,
                scheduled_for=now,
                now=now,
                error=IN_FLIGHT_SKIP,
            )
        claim = claim_run(store, job, trigger, now, now, owner, attempt=1, payload=payload)
        claim.reserved_by = owner
        return claim


def claim_reserved_retry(store: Store, claim: Claim, now: datetime, owner: Owner) -> Claim | None:
    """Start the retry that `jobctl run` queued for itself (None if someone else took it)."""
    assert claim.job.id is not None
    with store.write():
        run_id = store.start_reserved_retry(
            claim.job.id, claim.scheduled_for, claim.attempt + 1, now, owner
        )
        if run_id is None:
            return None
        return prepare(
            store,
            Claim(
                run_id,
                claim.job,
                RunTrigger.RETRY,
                claim.attempt + 1,
                claim.scheduled_for,
                now,
                payload=claim.payload,
                reserved_by=owner,
            ),
        )


def queue_manual(
    store: Store,
    name: str,
    now: datetime,
    *,
    payload: str | None = None,
    trigger: RunTrigger = RunTrigger.MANUAL,
) -> tuple[int, str]:
    """Ask the daemon to run `name`: a queued row it picks up (or a skipped one)."""
    with store.write():
        return _queue(store, _get_job(store, name), now, payload=payload, trigger=trigger)


def queue_rerun(store: Store, run_id: int, now: datetime) -> tuple[int, str, str]:
    """Ask the daemon to run run `run_id`'s job again with the same payload (a webhook's
    body): (the new run's id, queued|skipped, the job's name). Trigger `rerun`, linked to
    the original by `rerun_of`."""
    from jobctl.errors import Failed, NotFound
    from jobctl.runs import run_details

    with store.write():
        run = store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run with id {run_id} (see `jobctl runs`)")
        job = store.job_by_id(run.job_id) if run.job_id is not None else None
        if job is None:
            raise Failed(f"run {run_id} has no job: run it again with jobctl run ...")
        details = run_details(run)
        new_id, status = _queue(
            store,
            job,
            now,
            payload=details.get("payload"),
            payload_type=details.get("payload_type"),
            trigger=RunTrigger.RERUN,
        )
        store.mark_rerun_of(new_id, run_id)
        return new_id, status, job.name


def queue_webhook(
    store: Store,
    name: str,
    now: datetime,
    *,
    payload: str,
    payload_type: str | None = None,
    replay_keys: Sequence[str] = (),
) -> tuple[int | None, str]:
    """A webhook's run: (run id, queued|skipped), (original run id, duplicate) or paused.

    The replay check, the run and the remembered keys share one write transaction, so two
    copies of a request arriving at once start one run.
    """
    from jobctl import hooks

    with store.write():
        job = _get_job(store, name)
        assert job.id is not None
        original = hooks.seen_delivery(store, job.id, replay_keys, now)
        if original is not None:
            return original, "duplicate"
        if job.state == JobState.PAUSED:
            return None, "paused"
        run_id, status = _queue(
            store, job, now, payload=payload, payload_type=payload_type, trigger=RunTrigger.WEBHOOK
        )
        hooks.remember_delivery(store, job.id, replay_keys, run_id, now)
        return run_id, status


def _queue(
    store: Store,
    job: Job,
    now: datetime,
    *,
    payload: str | None,
    trigger: RunTrigger,
    payload_type: str | None = None,
) -> tuple[int, str]:
    """The queued (or overlap-skipped) row, inside the caller's write transaction."""
    assert job.id is not None
    overlap = job.effective_policies().overlap
    details = payload_details(payload, payload_type)
    # A run waiting in the queue is in flight as much as a running one: without this, a
    # burst of webhooks would queue runs that then fire back to back.
    if overlap == Overlap.SKIP and (store.has_running(job.id) or store.has_queued(job.id)):
        store.count_skipped(job.id)
        run_id = store.insert_run(
            job_id=job.id,
            trigger=trigger,
            status=RunStatus.SKIPPED,
            scheduled_for=now,
            now=now,
            error=IN_FLIGHT_SKIP,
        )
        return run_id, RunStatus.SKIPPED
    run_id = store.insert_run(
        job_id=job.id,
        trigger=trigger,
        status=RunStatus.QUEUED,
        scheduled_for=now,
        now=now,
        due_at=now,
        details=details,
    )
    return run_id, RunStatus.QUEUED
