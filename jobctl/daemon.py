"""The long-running loop: claim what is due and fire it, with signals and a heartbeat.

One daemon per database, enforced with `fcntl.flock` on `<database>.lock` (the kernel
releases it when the process dies, so a kill -9 never leaves a stale lock). The loop also
watches that the database is still the file it opened and that it can be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl import engine
from jobctl.chores import Chores, Writers
from jobctl.daemon_config import DaemonConfig
from jobctl.dbwatch import FILES_LOST_EXIT, WRITE_RETRY, DatabaseWatch
from jobctl.engine.claim import CANNOT_WRITE, NO_DAEMON
from jobctl.engine.deliver import Background
from jobctl.engine.inflight import InFlight
from jobctl.engine.output import OutputWriter
from jobctl.engine.recover import record_process, recover
from jobctl.engine.report import log_recorded
from jobctl.engine.summary import MinuteSummary
from jobctl.engine.wake import seconds_to_wait
from jobctl.errors import InvalidInput
from jobctl.fleet import LeaseKeeper, Membership
from jobctl.intake import Intake, LoopState
from jobctl.liveness import InstanceLock
from jobctl.log_redaction import RedactingLogFilter
from jobctl.metrics import Metrics
from jobctl.models import Owner
from jobctl.secrets import Redactor, file_secrets, fire_environment
from jobctl.service import SystemdNotifier, reopen_log, setup_logging
from jobctl.store import open_store
from jobctl.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from jobctl.listener import Listener
    from jobctl.store import Store

log = logging.getLogger("jobctl.daemon")

IDLE_POLL = 0.25  # seconds between checks for changes made by other processes
MIN_TICK = 0.005  # slots this close together share one claim transaction
# The loop wakes WAKE_LEAD before the next slot and claims the slots of the next
# CLAIM_AHEAD seconds in that one transaction, each fired at its time: a busy second takes
# a few claim transactions, not one per slot (issue 18).
CLAIM_AHEAD = 0.1
WAKE_LEAD = 0.05
TAKEOVER_AFTER = 0.001  # a lease has run out once its end is past (expire_daemons)
SUSPEND_THRESHOLD = 5.0  # wall clock ahead of monotonic by this much: the machine slept


# The cyclic collector's generation thresholds for the loop (Python's: 700, 10, 10). A busy
# daemon allocates and frees a few hundred container objects per fire, most of them freed at
# once by reference counting; with Python's thresholds the collector still walked the runs in
# flight every 700 net allocations and the whole heap about once a second: 33% of the
# daemon's CPU at 3,000 one-second jobs, 7% at 1,000 (bench/daemon_bench.py with gc.callbacks
# timing each collection); with start-up's objects frozen and these thresholds, 0.5% at 1,000.
GC_THRESHOLDS = (10_000, 10, 10)


def quiet_collector() -> None:
    """What start-up made (modules, sessions, the store) lives as long as the process: out of
    the collector's sight, so that no full collection walks it again; and the thresholds
    above."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Daemon:
    def __init__(self, config: DaemonConfig, lock: InstanceLock | None = None) -> None:
        self.config = config
        self.owner = Owner.this_process()
        self.env: Mapping[str, str] = fire_environment(config.env_file)
        self._log_filter = RedactingLogFilter(Redactor(file_secrets(self.env)))
        self.lock = lock or InstanceLock(config.db_path)
        self._stop, self._wake = asyncio.Event(), asyncio.Event()
        now = utcnow()
        self.state = LoopState(
            started_at=now, last_loop_monotonic=time.monotonic(), last_tick_wall=now
        )
        self.awake_since, self.gap_cause = now, NO_DAEMON  # slots before: a gap, unwatched
        self.notifier = SystemdNotifier()
        self._log_handler: logging.Handler | None = None
        self.metrics = Metrics()
        self.summary = MinuteSummary(time.monotonic())
        self.listener: Listener | None = None
        self._queued_waiting = True  # until a claim step has looked
        self.exit_code = 0

    def run(self, *, locked: bool = False) -> int:
        """Take the lock (unless a launcher already did), run until SIGTERM/SIGINT."""
        if locked:
            self.lock.write_owner()
        else:
            self.lock.acquire()
        self._log_handler = setup_logging(self.config.log)
        self._log_handler.addFilter(self._log_filter)
        try:
            return asyncio.run(self._main())
        finally:
            self.notifier.close()
            self.lock.release()

    async def _main(self) -> int:
        store = self.store = open_store(self.config.db_path)
        self.watch = DatabaseWatch(self.config.db_path, self.lock, self.state, self._show_status)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        limits = engine.Limits(self.config.max_http, self.config.max_agent, self.config.max_exec)
        self.output = OutputWriter(store) if self.config.stream_output else None
        runner = engine.Runner(
            limits,
            on_process=lambda run, pid: record_process(store, run, pid),
            output=self.output,
        )
        runner.firers.http  # noqa: B018 - import aiohttp now, not on the first fire
        self.background = Background(store, runner, lambda: self.env)
        self.in_flight = InFlight(store, runner, self._recorded)
        recover(store)
        self.fleet = Membership(
            store,
            self.owner,
            queues=self.config.queues,
            lease=self.config.lease,
            alone=self.lock.path is not None,
        )
        self.state.daemon_id, self.state.queues = self.fleet.id, self.config.queues  # /metrics
        if self.config.listen:
            token_env = self.config.metrics_token_env
            token = self.env.get(token_env) if token_env else None
            host = Intake(store, self.state, self.metrics, self.in_flight, self._wake.set)
            self.listener = await host.listen(
                self.config.listen, token, db_path=self.config.db_path
            )
        listen = self.listener.url if self.listener else None
        log_file = str(self.config.log.file) if self.config.log.file else None
        watched_since = self.fleet.join(
            self.state.started_at, utcnow(), listen=listen, log_file=log_file
        )
        self.awake_since = min(self.awake_since, watched_since)
        keeper = None
        if not self.fleet.alone:  # SQLite: no other daemon could take over
            keeper = LeaseKeeper(
                self.fleet, store.answered_at, lambda: open_store(self.config.db_path)
            )
            keeper.start()
        log.info(
            "daemon started (pid %d) on %s: id %s, queues %s",
            os.getpid(),
            self.config.db_path,
            self.fleet.id,
            ", ".join(self.config.queues) or "all",
        )
        self.notifier.ready(self._status_line())
        writers = Writers(store, self.in_flight, self.output, self.watch.cannot_write)
        quiet_collector()
        try:
            await self._loop(store)
        finally:
            writers.stop_pruning()
            self.notifier.stopping()
            if self.listener is not None:
                await self.listener.stop()  # no new webhook runs while we wind down
            await self.in_flight.settle(self.config.grace)
            await writers.stop()
            if keeper is not None:
                keeper.stop()
            self.in_flight.finish(self.owner, self.fleet.id)
            await self.background.drain(timeout=5)  # notifications get a moment, not forever
            await runner.close()
            store.close()
            self.summary.tick(time.monotonic(), final=True)
            log.info("daemon stopped")
        return self.exit_code

    def _reload(self) -> None:
        """SIGHUP: reopen the log file (after logrotate) and re-read the env file."""
        reopen_log(self._log_handler)
        try:
            self.env = fire_environment(self.config.env_file)
        except InvalidInput as exc:
            log.error("SIGHUP: kept the previous environment: %s", exc)
            return
        self._log_filter.redactor = Redactor(file_secrets(self.env))
        log.info("SIGHUP: log file reopened, environment re-read")

    def _status_line(self) -> str:
        enabled, in_flight = self.store.count_enabled_jobs(), len(self.in_flight)
        return self.state.status_line(enabled, in_flight, self.watch.trouble_age())

    def _show_status(self) -> None:
        if self.notifier.enabled:
            self.notifier.status(self._status_line())

    def _request_stop(self, signum: int) -> None:
        if not self._stop.is_set():
            log.info("received %s: stopping", signal.Signals(signum).name)
        self._stop.set()
        self._wake.set()

    def _recorded(self, batch: list[engine.Recorded]) -> None:
        for item in batch:
            log_recorded(item)
            self.summary.recorded(item)
            self.background.send(item.notice)
            self.metrics.count(item)
        # A queued run may start now that a run ended, and a retry or a chained run changes
        # when the loop must look again; otherwise the loop sleeps on (a busy daemon records
        # every few milliseconds: a claim step after each would cost more than the fires).
        if self._queued_waiting or any(item.retry_at or item.chained for item in batch):
            self._wake.set()

    # ---------------------------------------------------------------------- loop

    async def _loop(self, store: Store) -> None:
        last_wall, last_mono = utcnow(), time.monotonic()
        chores = Chores(
            store,
            self.fleet,
            self.state,
            self.background,
            self.in_flight,
            self._show_status,
            last_mono,
        )
        data_version = store.data_version()
        while not self._stop.is_set():
            now, mono = utcnow(), time.monotonic()
            self.state.last_loop_monotonic, self.state.last_tick_wall = mono, now
            self._notice_suspend(now, last_wall, mono - last_mono)
            last_wall, last_mono = now, mono
            try:
                if chores.heartbeat_due(mono) and (lost := self.watch.files_lost()):
                    self.exit_code = FILES_LOST_EXIT
                    if self.notifier.enabled:
                        self.notifier.status(f"stopping: {lost}")
                    break
                if self.state.write_trouble is not None:
                    store.heartbeat(utcnow())  # the probe: raises while it cannot write
                    self.watch.recovered()
                    # Nothing fired meanwhile: those slots are a gap (one missed row each,
                    # then the catch-up policy), not a run per slot skipped behind nothing.
                    self.awake_since, self.gap_cause = utcnow(), CANNOT_WRITE
                claimed = self.in_flight.step(
                    now,
                    self.env,
                    owner=self.owner,
                    awake_since=self.awake_since,
                    gap_cause=self.gap_cause,
                    queues=self.config.queues,
                    ahead=CLAIM_AHEAD,
                )
                self._queued_waiting = claimed.waiting
                for notice in claimed.notices:
                    self.background.send(notice)
                self.fleet.fired(len(claimed.claims))
                self.summary.claimed(claimed)
                self.summary.tick(mono)
                self.state.ticks += 1
                self.notifier.watchdog(mono)  # from the loop: a stuck loop stops the pings
                chores.run(now, mono)
                timeout = seconds_to_wait(
                    store,
                    utcnow(),
                    idle=IDLE_POLL,
                    soonest=MIN_TICK,
                    queues=self.config.queues,
                    lead=WAKE_LEAD,
                    claimed_until=claimed.claimed_until,
                )
                lease_end = self.fleet.seconds_to_lease_end(utcnow())
                if lease_end is not None:  # another daemon's lease: take over as it runs out
                    timeout = min(timeout, max(MIN_TICK, lease_end + TAKEOVER_AFTER))
            except Exception as exc:  # one failing step is logged; the loop goes on
                if self.watch.cannot_write(exc):
                    timeout = WRITE_RETRY
                else:
                    log.exception("scheduling step failed")
                    timeout = IDLE_POLL
            data_version = await self._sleep(store, timeout, data_version)

    def _notice_suspend(self, now: datetime, last_wall: datetime, mono_elapsed: float) -> None:
        jump = (now - last_wall).total_seconds() - mono_elapsed
        if jump > SUSPEND_THRESHOLD:
            log.warning(
                "the clock jumped %s ahead (machine asleep?): slots in between are missed",
                format_duration(round(jump)),
            )
            self.awake_since, self.gap_cause = now, NO_DAEMON

    async def _sleep(self, store: Store, timeout: float, data_version: int) -> int:
        """Sleep until the timeout, a stop, a finished run, or a change by another process."""
        deadline = time.monotonic() + timeout
        await asyncio.sleep(0)  # always let runs, webhooks and signals have their turn
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                return data_version
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(remaining, IDLE_POLL))
                return data_version
            current = store.data_version()
            if current != data_version:
                return current
