"""Runs firing as tasks, recorded in batches as they finish: the daemon's side of a step.

`start` hands each claim to the Runner in its own task; finished runs wait a few
milliseconds so that those ending together share one write transaction (group commit).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from jobctl.engine.approvals import take_decided
from jobctl.engine.cancel import CancelWatch, cancelled_outcome
from jobctl.engine.claim import NO_DAEMON, Step, claim_due
from jobctl.engine.record import Recorded, record_outcomes
from jobctl.engine.recover import interrupt_own
from jobctl.engine.report import log_claimed
from jobctl.store import StoreError
from jobctl.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from jobctl.actions import Outcome
    from jobctl.engine.claim import Claim
    from jobctl.engine.runner import Runner
    from jobctl.models import Owner
    from jobctl.store import Store

log = logging.getLogger("jobctl.daemon")

FLUSH_DELAY = 0.005  # group commit: outcomes finishing within 5 ms share one transaction
# ... and a busy daemon records at most this often (every write transaction costs the
# same few statements, however many runs it records). 0.1 s rather than 0.05: 7-9% less
# CPU per fire at 1,000-2,000 spread one-second jobs, the same at 3,000 (where the claim
# steps record first anyway); a kill -9 leaves at most 0.1 s of finished runs unrecorded
# (taken over as interrupted, their requests sent).
FLUSH_EVERY = 0.1
APPROVALS_EVERY = 0.25  # seconds between looks at the runs waiting for an approval
# A run claimed ahead starts at its moment rounded up to the next multiple of 5 ms of the
# loop's clock, never before it: the runs of those 5 ms share one timer and one wake-up of
# the loop (as systemd's AccuracySec or the kernel's timer slack do). Spread one-second jobs:
# 20-30% less CPU per fire at 1,000, 7% at 3,000; lateness up 2.5 ms on average.
TIMER_SLACK = 0.005


class InFlight:
    """The runs this process is firing, and the outcomes waiting to be recorded."""

    def __init__(
        self, store: Store, runner: Runner, on_recorded: Callable[[list[Recorded]], None]
    ) -> None:
        """`on_recorded` is told of each batch recorded (to log it, send its notices...)."""
        self.store = store
        self.runner = runner
        self.on_recorded = on_recorded
        self._tasks: dict[int, asyncio.Task[None] | _Waiting] = {}
        # Runs waiting for their moment, by the TIMER_SLACK tick whose timer starts them.
        self._ticks: dict[int, list[_Waiting]] = {}
        self._finished: list[tuple[Claim, Outcome]] = []
        self._ready = asyncio.Event()
        self._cancelling: set[int] = set()  # runs stopped on request (`runs cancel`)
        self._cancel_watch = CancelWatch(store)
        self._approvals_looked_at = -APPROVALS_EVERY  # monotonic seconds

    def __len__(self) -> int:
        return len(self._tasks)

    def step(
        self,
        now: datetime,
        env: Mapping[str, str],
        *,
        owner: Owner,
        awake_since: datetime,
        gap_cause: str = NO_DAEMON,
        queues: Sequence[str] = (),
        ahead: float = 0.0,
    ) -> Step:
        """The daemon's step (engine.step without waiting on the fires): record what has
        finished (a run that is over is not in flight for the overlap policy), claim what
        is due, log it, and start firing it."""
        self.flush()
        self._cancelling.update(self._cancel_watch.stop_requested(owner, self._tasks))
        claimed = claim_due(
            self.store,
            now,
            awake_since=awake_since,
            owner=owner,
            gap_cause=gap_cause,
            queues=queues,
            ahead=ahead,
        )
        log_claimed(claimed)
        self.start(claimed.claims, env)
        self._take_decided(now, env, owner)
        return claimed

    def _take_decided(self, now: datetime, env: Mapping[str, str], owner: Owner) -> None:
        """Team runs decided at an approval point (or waiting too long) are taken up: a
        look every APPROVALS_EVERY seconds, however busy the loop is."""
        looked_at = time.monotonic()
        if looked_at - self._approvals_looked_at < APPROVALS_EVERY:
            return
        self._approvals_looked_at = looked_at
        taken = take_decided(self.store, now, owner)
        for claim in taken.claims:
            log.info("%s run %d approved: going on", claim.job.name, claim.run_id)
        self.start(taken.claims, env)
        if taken.ended:
            self._finished.extend(taken.ended)
            self._ready.set()

    def start(self, claims: list[Claim], env: Mapping[str, str]) -> None:
        """Fire each claim in its own task; one claimed ahead (or with jitter) waits for
        its moment with no task (see _Waiting), on its TIMER_SLACK tick's timer."""
        loop = asyncio.get_running_loop()
        tasks, ticks = self._tasks, self._ticks
        now, loop_now = time.monotonic(), loop.time()
        for claim in claims:
            if claim.delay:  # from the claim's moment, as Runner.fire would wait
                wait = claim.delay - (now - claim.made_at)
                if wait > 0:
                    at = loop_now + wait
                    tick = math.ceil(at / TIMER_SLACK)
                    if tick * TIMER_SLACK < at:  # never before the moment (float rounding)
                        tick += 1
                    waiting = _Waiting(claim, env, self)
                    if tick in ticks:
                        ticks[tick].append(waiting)
                    else:
                        ticks[tick] = [waiting]
                        loop.call_at(tick * TIMER_SLACK, self._launch, tick)
                    tasks[claim.run_id] = waiting
                    continue
            tasks[claim.run_id] = asyncio.create_task(self._fire(claim, env))

    def _launch(self, tick: int) -> None:
        """The moments of a tick's claims have come: a task for each still waiting."""
        tasks = self._tasks
        for waiting in self._ticks.pop(tick):
            if waiting.take():
                claim = waiting.claim
                tasks[claim.run_id] = asyncio.create_task(
                    self._fire(claim, waiting.env, waited=True)
                )

    def _stopped_waiting(self, claim: Claim) -> None:
        """A waiting claim was cancelled (_Waiting.cancel): what _fire does for a task
        cancelled while it waited for its delay."""
        run_id = claim.run_id
        self._tasks.pop(run_id, None)
        if run_id not in self._cancelling:
            return  # as a task cancelled for another reason: the run ends interrupted
        self._cancelling.discard(run_id)
        self._finished.append((claim, cancelled_outcome(claim, asyncio.CancelledError(), utcnow())))
        self._ready.set()

    async def _fire(self, claim: Claim, env: Mapping[str, str], *, waited: bool = False) -> None:
        try:
            outcome = await self.runner.fire(claim, env, waited=waited)
        except asyncio.CancelledError as stopped:
            if claim.run_id not in self._cancelling:
                raise  # the daemon is stopping: the run ends interrupted
            outcome = cancelled_outcome(claim, stopped, utcnow())
        finally:
            self._tasks.pop(claim.run_id, None)
            self._cancelling.discard(claim.run_id)
        self._finished.append((claim, outcome))
        self._ready.set()

    def flush(self) -> None:
        """Record every finished run now, in one transaction (kept for later if it fails)."""
        if not self._finished:
            return
        output = self.runner.output
        if output is not None:
            output.flush()  # a follower sees every piece of a run before it is finished
        batch, self._finished = self._finished, []
        try:
            recorded = record_outcomes(self.store, batch, utcnow())
        except BaseException:
            self._finished = batch + self._finished
            raise
        if output is not None:
            for claim, _outcome in batch:
                output.close(claim.run_id)
        self.on_recorded(recorded)

    async def flush_forever(
        self, cannot_write: Callable[[BaseException], bool], retry: float
    ) -> None:
        """Record finished runs as they come; after a failure (`cannot_write` logs one it
        knows), again `retry` seconds later."""
        flushed = -FLUSH_EVERY
        while True:
            await self._ready.wait()
            await asyncio.sleep(max(FLUSH_DELAY, flushed + FLUSH_EVERY - time.monotonic()))
            flushed = time.monotonic()
            self._ready.clear()
            try:
                self.flush()
            except Exception as exc:
                if not cannot_write(exc):
                    log.exception("recording outcomes failed; will retry")
                self._ready.set()
                await asyncio.sleep(retry)

    async def settle(self, grace: float) -> None:
        """Wait up to `grace` seconds for the runs in flight; cancel those still going."""
        for run_id, entry in list(self._tasks.items()):
            if isinstance(entry, _Waiting) and entry.take():
                # a task, which waits for its moment within the grace (as it would have)
                self._tasks[run_id] = asyncio.create_task(self._fire(entry.claim, entry.env))
        in_flight = [task for task in self._tasks.values() if isinstance(task, asyncio.Task)]
        if not in_flight:
            return
        log.info("waiting up to %s for %d runs in flight", format_duration(grace), len(in_flight))
        _, pending = await asyncio.wait(in_flight, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def finish(self, owner: Owner, daemon_id: str | None = None) -> None:
        """At shutdown, after `settle`: the last outcomes recorded, the runs still in flight
        interrupted, the heartbeat stopped; a database that cannot be written is logged."""
        try:
            self.flush()
            if self.runner.output is not None:
                self.runner.output.flush()  # what the runs cut short had printed
            interrupt_own(self.store, owner, utcnow(), daemon_id)
        except StoreError as exc:  # a full disk, say: stop cleanly all the same
            log.error(
                "could not record how the runs in flight ended (%s): the next jobctl "
                "process to open the database marks those left running interrupted",
                exc,
            )


class _Waiting:
    """A run claimed ahead of its moment (CLAIM_AHEAD, jitter): its tick's timer starts its
    task then.

    A task made at once would sleep until then, a future and a timer more per run, and live as
    long. This stands for the task in InFlight's runs meanwhile: `cancel` (a `runs cancel`)
    ends the run as a task cancelled in its sleep would; `take` hands it on to its task (the
    timer's, or settle's), once.
    """

    __slots__ = ("_owner", "_state", "claim", "env")

    def __init__(self, claim: Claim, env: Mapping[str, str], owner: InFlight) -> None:
        self.claim = claim
        self.env = env
        self._owner = owner
        self._state = _WAITING

    def take(self) -> bool:
        """Its task starts now: False if it was cancelled, or started already."""
        if self._state != _WAITING:
            return False
        self._state = _TAKEN
        return True

    def cancelling(self) -> int:
        return int(self._state == _CANCELLED)

    def cancel(self) -> bool:
        if self._state != _WAITING:
            return False
        self._state = _CANCELLED
        # on the next turn of the loop, as the sleeping task would have seen its cancellation
        asyncio.get_running_loop().call_soon(self._owner._stopped_waiting, self.claim)
        return True


_WAITING, _TAKEN, _CANCELLED = 0, 1, 2
