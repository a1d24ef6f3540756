"""This daemon's place in the fleet: its id and lease (renewed with the heartbeat), the
takeover of daemons whose lease ran out, and what it tells the others in its row.

On PostgreSQL several daemons share the database with no leader: each slot is claimed by
row locks, and a daemon that stops renewing its lease is declared dead by whichever other
daemon notices first (a conditional update: one of them wins), which interrupts its runs
in flight and retries them per policy. On SQLite the one daemon keeps the same row.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jobctl.engine.recover import take_over_expired
from jobctl.engine.report import log_missed
from jobctl.engine.unserved import sweep_unserved
from jobctl.errors import JobctlError
from jobctl.models import DaemonEntry, Owner
from jobctl.store import StoreError
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from jobctl.store import Store

log = logging.getLogger("jobctl.daemon")

DEFAULT_LEASE = 30.0  # seconds a daemon stays alive without a heartbeat
RENEW_EVERY = 1.0  # seconds between the lease keeper's renewals
KEEP_STOPPED = timedelta(days=7)  # rows of stopped daemons kept this long


def watched_since(live: Sequence[DaemonEntry], queues: Sequence[str], now: datetime) -> datetime:
    """Since when every queue of `queues` has had a live daemon firing it (`now` for a
    queue that has none): slots before were watched, later ones may be a gap."""
    since = None
    for queue in queues:
        starts = [entry.started_at for entry in live if entry.serves(queue)]
        covered = min(starts) if starts else now
        since = covered if since is None else max(since, covered)
    return min(since, now) if since is not None else now


class Membership:
    """One daemon start in the fleet: join, beat, take over the dead, leave."""

    def __init__(
        self,
        store: Store,
        owner: Owner,
        *,
        queues: Sequence[str],
        lease: float,
        alone: bool,
    ) -> None:
        self.store = store
        self.owner = owner
        self.queues = tuple(queues)
        self.lease = timedelta(seconds=lease)
        self.alone = alone  # SQLite: one daemon holds the lock, earlier rows are over
        self.id = secrets.token_hex(8)
        self._fires: deque[tuple[float, int]] = deque()
        self._listen: str | None = None
        self._log_file: str | None = None
        self._started_at: datetime | None = None
        self._unserved: set[str] = set()  # queues warned of, while no live daemon fires them
        # When another daemon's lease runs out unless renewed: a takeover is looked for then,
        # not at the next heartbeat after it (up to HEARTBEAT_EVERY later).
        self.next_lease_end: datetime | None = None

    def join(
        self, started_at: datetime, now: datetime, *, listen: str | None, log_file: str | None
    ) -> datetime:
        """Enter the fleet (and write the heartbeat row `status` reads); returns since when
        slots of this daemon's queues were watched (by a live daemon that fires them, or from
        now): earlier slots are a gap."""
        self.store.heartbeat_start(
            pid=self.owner.pid,
            host=self.owner.host,
            started_at=started_at,
            now=now,
            listen=listen,
            log_file=log_file,
        )
        since = now
        if not self.alone:
            queues = self.queues or tuple(self.store.enabled_queue_counts())
            since = watched_since(self.store.live_daemons(now), queues, now)
        self._started_at, self._listen, self._log_file = started_at, listen, log_file
        self._insert(now)
        self.store.prune_daemons(now - KEEP_STOPPED)
        return since

    def _insert(self, now: datetime) -> None:
        assert self._started_at is not None
        self.store.daemon_join(
            DaemonEntry(
                id=self.id,
                host=self.owner.host,
                pid=self.owner.pid,
                queues=self.queues,
                started_at=self._started_at,
                last_beat_at=now,
                lease_until=now + self.lease,
                listen=self._listen,
                log_file=self._log_file,
            ),
            alone=self.alone,
        )

    def fired(self, count: int) -> None:
        """`count` runs started now (for the fires of the last minute)."""
        if count:
            self._fires.append((time.monotonic(), count))

    def fired_last_minute(self) -> int:
        edge = time.monotonic() - 60
        while self._fires and self._fires[0][0] < edge:
            self._fires.popleft()
        return sum(count for _, count in self._fires)

    def beat(self, now: datetime, in_flight: int) -> None:
        """Renew the lease and tell the fleet what this daemon does; a daemon declared dead
        meanwhile (it stalled past its lease) joins again under a new id."""
        alive = self.store.daemon_beat(
            self.id,
            now,
            now + self.lease,
            in_flight=in_flight,
            fired_last_minute=self.fired_last_minute(),
        )
        if not alive:
            log.warning(
                "this daemon's lease had expired and others took over its runs: joining again"
            )
            self.id = secrets.token_hex(8)
            self._insert(now)

    def take_over(self, now: datetime) -> None:
        """Declare dead the daemons whose lease ran out (their runs interrupted, retried),
        and note when the next lease of the others runs out."""
        if not self.alone:
            take_over_expired(self.store, now)
            self.next_lease_end = self.store.soonest_lease_end(self.id)

    def seconds_to_lease_end(self, now: datetime) -> float | None:
        """Seconds until another daemon's lease runs out (a takeover is due just after);
        None when none is known (SQLite, or no other daemon)."""
        if self.next_lease_end is None:
            return None
        return (self.next_lease_end - now).total_seconds()

    def sweep_unserved(self, now: datetime) -> None:
        """Record missed the passed slots of queues no live daemon fires (about once a
        lease); one warning per queue while it stays unserved, one line when it is not."""
        if self.alone:  # SQLite: the one daemon is the fleet
            return
        sweep = sweep_unserved(self.store, now, self.lease)
        for queue, jobs in sorted(sweep.unserved.items()):
            if queue not in self._unserved:
                log.warning(
                    "queue %s: no live daemon fires its %d enabled job%s: their slots are "
                    "recorded missed until one starts (jobctl daemon --queue %s)",
                    queue,
                    jobs,
                    "" if jobs == 1 else "s",
                    queue,
                )
        for queue in sorted(self._unserved - sweep.unserved.keys()):
            log.info("queue %s: a live daemon fires it again (or it has no enabled jobs)", queue)
        self._unserved = set(sweep.unserved)
        log_missed(sweep.missed, logging.DEBUG)  # the spell's warning said it


class LeaseKeeper:
    """Renews the lease from a thread of its own, on a connection of its own, every
    RENEW_EVERY seconds: a loop busy with fires, whose statements wait on locks other
    writers hold, or whose steps keep failing still keeps its lease (a lost lease
    interrupts every run in flight, though their requests went out).

    A truly stuck daemon must lose it all the same: the lease runs one lease past the last
    answer the database gave the loop's own connection (`answered`; even an idle loop asks
    every IDLE_POLL whether anything changed), never further. A stopped process (SIGSTOP)
    renews nothing; a loop that asks nothing more (caught in a computation, or waiting
    forever) lets its lease run out one lease after its last answer."""

    def __init__(
        self, fleet: Membership, answered: Callable[[], float], open_store: Callable[[], Store]
    ) -> None:
        self.fleet = fleet
        self._answered = answered
        self._open_store = open_store
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._renew_forever, name="lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def lease_until(self, now: datetime) -> datetime | None:
        """Until when the lease runs if renewed at `now`: one lease past the loop's last
        answer; None once that is past (the loop is stuck: let the lease run out)."""
        since = timedelta(seconds=max(0.0, time.monotonic() - self._answered()))
        if since >= self.fleet.lease:
            return None
        return now - since + self.fleet.lease

    def _renew_forever(self) -> None:
        store: Store | None = None
        stuck = False
        while not self._stopping.wait(RENEW_EVERY):
            now = utcnow()
            until = self.lease_until(now)
            if until is None:
                if not stuck:
                    log.warning(
                        "the daemon's loop has had no answer from the database for a whole "
                        "lease: its lease is left to run out"
                    )
                stuck = True
                continue
            stuck = False
            try:
                if store is None:
                    store = self._open_store()
                store.renew_lease(self.fleet.id, now, until)
            except (StoreError, JobctlError) as exc:  # the loop's beat says it too
                log.debug("could not renew the lease: %s", exc)
        if store is not None:
            store.close()
