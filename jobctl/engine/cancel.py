"""Cancel requests, on the side of the process that owns the run (the daemon, `jobctl run`).

`runs cancel` marks a running run's row (`cancel_requested_at`); its owner notices it on its
next step (the daemon) or within CANCEL_POLL (`jobctl run`), cancels the run's task, and the
action's cancellation path stops it (a process group SIGTERMed then SIGKILLed after the grace,
an HTTP or agent request aborted). The run is then recorded `cancelled`, with what it had
produced so far: no retry follows, and it counts as executed, not failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from jobctl.models import RunStatus
from jobctl.store import StoreError
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from jobctl.actions import Outcome
    from jobctl.engine.claim import Claim
    from jobctl.engine.runner import Runner
    from jobctl.models import Owner
    from jobctl.store import Store

log = logging.getLogger("jobctl.daemon")

CANCELLED_BY_REQUEST = "cancelled by request"
CANCEL_POLL = 0.2  # `jobctl run`: seconds between looks for a cancel request


def cancelled_outcome(claim: Claim, stopped: BaseException, now: datetime) -> Outcome:
    """The outcome of a run stopped on request: what the action had produced when it was
    stopped (the Cancelled it raised carries it), as `cancelled`."""
    from jobctl.actions import Cancelled, Outcome

    if isinstance(stopped, Cancelled):
        outcome = stopped.outcome
        outcome.status = RunStatus.CANCELLED
        outcome.error = CANCELLED_BY_REQUEST
        return outcome
    # stopped before its action started (waiting for its jitter, or for a free slot)
    return Outcome(
        status=RunStatus.CANCELLED,
        started_at=claim.claimed_at,
        finished_at=now,
        error=CANCELLED_BY_REQUEST,
    )


async def fire_unless_cancelled(
    runner: Runner,
    claim: Claim,
    env: Mapping[str, str],
    store: Store,
    owner: Owner,
    *,
    poll: float = CANCEL_POLL,
) -> Outcome:
    """Fire the claim here (`jobctl run`), stopping it if somebody asks to cancel it; any
    other cancellation (Ctrl-C) goes on as it came."""
    current = asyncio.current_task()
    assert current is not None
    asked: list[bool] = []

    async def watch() -> None:
        while True:
            await asyncio.sleep(poll)
            try:
                requested = claim.run_id in store.cancel_requests(owner)
            except StoreError:  # a busy database: look again at the next poll
                continue
            if requested:
                log.info(
                    "run %d of %s: cancel requested, stopping it", claim.run_id, claim.job.name
                )
                asked.append(True)
                current.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await runner.fire(claim, env)
    except asyncio.CancelledError as stopped:
        if not asked:
            raise
        current.uncancel()
        return cancelled_outcome(claim, stopped, utcnow())
    finally:
        watcher.cancel()


class Stoppable(Protocol):
    """A run's task (or what stands for it before it has one: inflight's _Waiting)."""

    def cancel(self) -> bool: ...

    def cancelling(self) -> int: ...


class CancelWatch:
    """The daemon's look for cancel requests, once per step while runs are in flight: a
    request is written by another process, so the query runs only when PRAGMA data_version
    says another connection changed the database (about 1 µs to ask; the query is some
    100 µs with 1,000 runs in flight)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._version: int | None = None

    def stop_requested(self, owner: Owner, tasks: Mapping[int, Stoppable]) -> list[int]:
        """Cancel the tasks of the runs somebody asked to stop; returns their ids."""
        if not tasks:
            return []
        version = self.store.data_version()
        if version == self._version:
            return []
        requested = self.store.cancel_requests(owner)
        self._version = version
        stopping = []
        for run_id in requested:
            task = tasks.get(run_id)
            if task is not None and not task.cancelling():
                log.info("run %d: cancel requested, stopping it", run_id)
                task.cancel()
                stopping.append(run_id)
        return stopping
