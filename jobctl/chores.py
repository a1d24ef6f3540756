"""The daemon loop's chores besides claiming: the heartbeat (and the fleet's lease), the
sweep of queues no live daemon fires (once a lease), the orphan check and dead-man alerts,
each on its own period; and the writers that run beside the loop (outcomes in batches,
output pieces, retention)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.dbwatch import WRITE_RETRY
from jobctl.engine.recover import check_orphans
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from jobctl.engine.deliver import Background
    from jobctl.engine.inflight import InFlight
    from jobctl.engine.output import OutputWriter
    from jobctl.fleet import Membership
    from jobctl.intake import LoopState
    from jobctl.store import Store

HEARTBEAT_EVERY = 1.0
ORPHAN_CHECK_EVERY = 60.0
PRUNE_EVERY = 60.0  # retention (`--keep`, `--keep-for`), in small batches between fires
DEAD_MAN_CHECK_EVERY = 10.0  # how often `--alert-if-no-success` windows are checked


class Chores:
    """What the loop does now and then, each when its period has passed."""

    def __init__(
        self,
        store: Store,
        fleet: Membership,
        state: LoopState,
        background: Background,
        in_flight: Sized,
        on_beat: Callable[[], None],
        mono: float,
    ) -> None:
        """`on_beat` is called after each heartbeat (the systemd status line)."""
        self.store, self.fleet, self.state = store, fleet, state
        self.background, self.in_flight, self.on_beat = background, in_flight, on_beat
        self.last_heartbeat = self.last_orphan_check = self.last_dead_man_check = mono
        self.last_unserved_sweep = mono

    def heartbeat_due(self, mono: float) -> bool:
        return mono - self.last_heartbeat >= HEARTBEAT_EVERY

    def run(self, now: datetime, mono: float) -> None:
        if self.heartbeat_due(mono):
            self.last_heartbeat = mono
            self.store.heartbeat(utcnow())
            self.fleet.beat(utcnow(), len(self.in_flight))
            self.state.daemon_id = self.fleet.id  # a new one after a lost lease
            self.fleet.take_over(utcnow())
            self.on_beat()
        elif (until := self.fleet.seconds_to_lease_end(now)) is not None and until < 0:
            self.fleet.take_over(utcnow())  # another lease ran out since the last heartbeat
        if mono - self.last_unserved_sweep >= self.fleet.lease.total_seconds():
            self.last_unserved_sweep = mono
            self.fleet.sweep_unserved(utcnow())
        if mono - self.last_orphan_check >= ORPHAN_CHECK_EVERY:
            self.last_orphan_check = mono
            self.background.spawn(check_orphans(self.store))
        if mono - self.last_dead_man_check >= DEAD_MAN_CHECK_EVERY:
            self.last_dead_man_check = mono
            self.background.alert_dead_men(now)


class Writers:
    """The tasks that write beside the loop: finished runs in batches, output pieces as they
    come, retention. `stop` cancels them once the runs in flight have settled."""

    def __init__(
        self,
        store: Store,
        in_flight: InFlight,
        output: OutputWriter | None,
        cannot_write: Callable[[BaseException], bool],
    ) -> None:
        from jobctl.history import prune_forever

        self.pruner = asyncio.create_task(prune_forever(store, PRUNE_EVERY, cannot_write))
        self.others = [asyncio.create_task(in_flight.flush_forever(cannot_write, WRITE_RETRY))]
        if output is not None:
            self.others.append(asyncio.create_task(output.flush_forever(cannot_write)))

    def stop_pruning(self) -> None:
        self.pruner.cancel()

    async def stop(self) -> None:
        for task in (self.pruner, *self.others):
            task.cancel()
        await asyncio.gather(self.pruner, *self.others, return_exceptions=True)
