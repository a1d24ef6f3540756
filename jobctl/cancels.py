"""`runs cancel ID` and `cancel NAME`: ending runs somebody wants stopped.

A queued run ends `cancelled` at once, in the transaction that finds it; a running one is
marked (`cancel_requested_at`) for the process that owns it (engine.cancel), and the caller
may wait for that process to record it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.engine.cancel import CANCELLED_BY_REQUEST
from jobctl.errors import Failed, NotFound
from jobctl.models import EventType, Run, RunStatus

if TYPE_CHECKING:
    from jobctl.store import Store

# How long `runs cancel` waits for the owner to stop a run: the process group's grace
# between SIGTERM and SIGKILL (actions.process.KILL_GRACE, 5 s), and 5 s more.
CANCEL_WAIT = 10.0
WAIT_POLL = 0.1


@dataclass(frozen=True)
class CancelAsked:
    """A run a cancel reached: `cancelled` (it was queued) or `running` (its owner asked)."""

    run_id: int
    job: str | None
    status: RunStatus


def cancel_run(store: Store, run_id: int, now: datetime) -> CancelAsked:
    """Cancel one run; NotFound for an unknown id, Failed for a run that has ended."""
    with store.write():
        run = store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run with id {run_id} (see `jobctl runs`)")
        return _cancel(store, run, now)


def cancel_job_runs(store: Store, name: str, now: datetime) -> list[CancelAsked]:
    """Cancel every run of job `name` in flight; Failed when it has none."""
    from jobctl.catalog import get_job

    with store.write():
        job = get_job(store, name)
        assert job.id is not None
        in_flight = store.runs_in_flight_of(job.id)
        if not in_flight:
            raise Failed(f"no run of {name} is in flight")
        return [_cancel(store, run, now) for run in in_flight]


def _cancel(store: Store, run: Run, now: datetime) -> CancelAsked:
    if run.status == RunStatus.QUEUED and store.cancel_queued_run(
        run.id, now, CANCELLED_BY_REQUEST
    ):
        if run.job_id is not None:
            store.count_cancelled_before_start(run.job_id)
        store.add_event(
            EventType.RUN_FINISHED,
            now,
            job=run.job,
            run=run.id,
            data={"status": RunStatus.CANCELLED.value, "error": CANCELLED_BY_REQUEST},
        )
        return CancelAsked(run.id, run.job, RunStatus.CANCELLED)
    if run.status == RunStatus.RUNNING and store.request_cancel(run.id, now):
        return CancelAsked(run.id, run.job, RunStatus.RUNNING)
    if run.status == RunStatus.WAITING:
        raise Failed(
            f"run {run.id} waits for an approval: end it with `jobctl runs reject {run.id}`"
        )
    raise Failed(f"run {run.id} already ended ({run.status})")


def wait_until_ended(
    store: Store, run_ids: list[int], *, timeout: float = CANCEL_WAIT, poll: float = WAIT_POLL
) -> list[Run]:
    """Poll until none of the runs is in flight, or `timeout` seconds pass; the runs as
    they are then."""
    deadline = time.monotonic() + timeout
    while True:
        found = store.runs_by_id(run_ids)
        if all(not run.status.in_flight for run in found) or time.monotonic() >= deadline:
            return found
        time.sleep(poll)
