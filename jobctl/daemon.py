"""The long-running loop: a plain loop around engine.claim_due, with signals and a heartbeat.

One daemon per database, enforced with `fcntl.flock` on `<database>.lock` (the kernel
releases it when the process dies, so a kill -9 never leaves a stale lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobctl import engine, runs
from jobctl.engine.claim import CANNOT_WRITE, NO_DAEMON
from jobctl.errors import InvalidInput
from jobctl.liveness import FileIdentity, InstanceLock, file_identity, moved_away
from jobctl.secrets import RedactingLogFilter, Redactor, file_secrets, fire_environment
from jobctl.service import LogConfig, SystemdNotifier, reopen_log, setup_logging
from jobctl.store import SqliteStore, StoreError, open_store
from jobctl.timeutil import format_duration, iso_z, utcnow

if TYPE_CHECKING:
    from jobctl.actions import Outcome
    from jobctl.listener import Gauges, Health, Listener

log = logging.getLogger("jobctl.daemon")

_SQLITE_IOERR = 10  # primary result codes (extended codes keep them in the low byte)
_SQLITE_FULL = 13

IDLE_POLL = 0.25  # seconds between checks for changes made by other processes
MIN_TICK = 0.005  # slots this close together share one claim transaction
HEARTBEAT_EVERY = 1.0
ORPHAN_CHECK_EVERY = 60.0
PRUNE_EVERY = 60.0
DEAD_MAN_CHECK_EVERY = 10.0  # how often `--alert-if-no-success` windows are checked  # retention (`--keep`, `--keep-for`), in small batches between fires
FLUSH_DELAY = 0.005  # group commit: outcomes finishing within 5 ms share one transaction
SUSPEND_THRESHOLD = 5.0  # wall clock ahead of monotonic by this much: the machine slept
FILES_LOST_EXIT = 1  # the database or lock file went away under the daemon
WRITE_RETRY = 1.0  # seconds between attempts while the database cannot be written
TROUBLE_LOG_EVERY = 60.0  # one log line a minute while it cannot


@dataclass
class DaemonConfig:
    db_path: Path
    max_http: int = 256
    max_agent: int = 8
    max_exec: int = 8
    grace: float = 30.0
    env_file: Path | None = None
    log: LogConfig = field(default_factory=LogConfig)
    listen: str | None = None  # HOST:PORT for webhooks, /healthz and /metrics
    metrics_token_env: str | None = None  # the variable that holds /metrics' bearer token


class Daemon:
    def __init__(self, config: DaemonConfig, lock: InstanceLock | None = None) -> None:
        self.config = config
        self.owner = runs.Owner.this_process()
        self.env: Mapping[str, str] = fire_environment(config.env_file)
        self._log_filter = RedactingLogFilter(Redactor(file_secrets(self.env)))
        self.store: SqliteStore | None = None
        self.lock = lock or InstanceLock(config.db_path)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._finished: list[tuple[engine.Claim, Outcome]] = []
        self._finished_ready = asyncio.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()  # notifications being sent
        self._runner: engine.Runner | None = None
        self.started_at = utcnow()
        self.awake_since = self.started_at  # slots before this passed unwatched: a gap
        self.gap_cause = NO_DAEMON
        self.ticks = 0
        self.notifier = SystemdNotifier()
        self._log_handler: logging.Handler | None = None
        from jobctl.listener import Metrics

        self.metrics = Metrics()
        self.listener: Listener | None = None
        self.last_loop_monotonic = time.monotonic()
        self.last_tick_wall = self.started_at
        self.db_identity: FileIdentity | None = None
        self.exit_code = 0
        self.write_trouble: str | None = None  # why the database cannot be written now
        self._trouble_since = 0.0  # monotonic
        self._trouble_logged = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def accept_webhook(
        self,
        name: str,
        payload: str,
        payload_type: str | None = None,
        replay_keys: Sequence[str] = (),
    ) -> tuple[int | None, str]:
        """Queue a webhook run for the loop to fire: see engine.queue_webhook."""
        assert self.store is not None
        run_id, status = engine.queue_webhook(
            self.store,
            name,
            utcnow(),
            payload=payload,
            payload_type=payload_type,
            replay_keys=replay_keys,
        )
        if status in ("queued", "skipped"):
            self._wake.set()
        return run_id, status

    # ------------------------------------------------ what the listener reads (ListenerHost)

    def webhook_secret(self, name: str) -> str | None:
        from jobctl.hooks import secret_for

        assert self.store is not None
        return secret_for(self.store, name)

    def health(self) -> Health:
        from jobctl.listener import Health

        return Health(self.last_loop_monotonic, self.last_tick_wall, self.write_trouble)

    def gauges(self) -> Gauges:
        from jobctl.listener import Gauges

        assert self.store is not None
        states = {str(state): count for state, count in self.store.job_state_counts().items()}
        return Gauges(
            self.started_at, self.ticks, self.in_flight, states, self.store.last_successes()
        )

    # ------------------------------------------------------------------ lifecycle

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
        self.store = open_store(self.config.db_path)
        self.db_identity = file_identity(self.config.db_path)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        limits = engine.Limits(self.config.max_http, self.config.max_agent, self.config.max_exec)
        self._runner = engine.Runner(limits, on_process=self._record_process)
        self._runner.firers.http  # noqa: B018 - import aiohttp now, not on the first fire
        self._recover()
        if self.config.listen:
            from jobctl.listener import Listener, parse_listen

            token_env = self.config.metrics_token_env
            token = self.env.get(token_env) if token_env else None
            self.listener = Listener(self, *parse_listen(self.config.listen), metrics_token=token)
            await self.listener.start()
        self._heartbeat(first=True)
        log.info("daemon started (pid %d) on %s", os.getpid(), self.config.db_path)
        self.notifier.ready(self._status_line())
        flusher = asyncio.create_task(self._flush_loop())
        pruner = asyncio.create_task(self._prune_loop())
        try:
            await self._loop()
        finally:
            pruner.cancel()
            await asyncio.gather(pruner, return_exceptions=True)
            await self._shutdown(flusher)
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
        assert self.store is not None
        enabled = self.store.count_enabled_jobs()
        tasks = len(self._tasks)
        line = (
            f"{enabled} job{'' if enabled == 1 else 's'} enabled, "
            f"{tasks} run{'' if tasks == 1 else 's'} in flight, "
            f"{self.ticks} tick{'' if self.ticks == 1 else 's'}"
        )
        if self.write_trouble is not None:
            line = f"{self.write_trouble} for {self._trouble_age()}; {line}"
        return line

    def _request_stop(self, signum: int) -> None:
        if not self._stop.is_set():
            log.info("received %s: stopping", signal.Signals(signum).name)
        self._stop.set()
        self._wake.set()

    def _recover(self, ended: Mapping[int, str] | None = None) -> None:
        """Runs left `running` by a dead process become interrupted (and maybe retried).

        Their commands' process groups are ended first (`ended`: those already ended, with
        a grace; at start-up here, before anything fires)."""
        assert self.store is not None
        if ended is None:
            ended = runs.end_orphaned_groups(self.store)
        now = utcnow()
        with self.store.write():
            orphans = runs.mark_interrupted(self.store, now, ended=ended)
            retried = engine.retry_interrupted(self.store, orphans, now)
            runs.release_reserved(self.store)
        for orphan in orphans:
            note = ended.get(orphan.run_id)
            log.warning(
                "run %d of %s was left running by a process that died: interrupted%s",
                orphan.run_id,
                orphan.job,
                f"; {note}" if note else "",
            )
        if retried:
            log.info("queued %d retries of interrupted runs", retried)

    async def _shutdown(self, flusher: asyncio.Task[None]) -> None:
        assert self.store is not None and self._runner is not None
        self.notifier.stopping()
        if self.listener is not None:
            await self.listener.stop()  # no new webhook runs while we wind down
        in_flight = list(self._tasks.values())
        if in_flight:
            log.info(
                "waiting up to %s for %d runs in flight",
                format_duration(self.config.grace),
                len(in_flight),
            )
            _, pending = await asyncio.wait(in_flight, timeout=self.config.grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        try:
            self._record_shutdown()
        except StoreError as exc:  # a full disk, say: stop cleanly all the same
            log.error(
                "could not record how the runs in flight ended (%s): the next jobctl process "
                "to open the database marks those left running interrupted",
                exc,
            )
        if self._background:  # notifications on their way get a moment, not forever
            await asyncio.wait(self._background, timeout=5)
        await self._runner.close()
        self.store.close()
        log.info("daemon stopped")

    def _record_shutdown(self) -> None:
        """The last outcomes; runs still in flight interrupted; the heartbeat stopped."""
        assert self.store is not None
        self._flush()
        now = utcnow()
        with self.store.write():
            left = self.store.running_run_ids(self.owner.pid, self.owner.host)
            interrupted = runs.mark_interrupted(
                self.store,
                now,
                run_ids=left,
                reason="interrupted: the daemon stopped before the run finished",
            )
            self.store.heartbeat_stop(now)
        for orphan in interrupted:
            log.warning("run %d of %s interrupted by shutdown", orphan.run_id, orphan.job)

    # ---------------------------------------------------------------------- loop

    async def _loop(self) -> None:
        assert self.store is not None
        last_wall = utcnow()
        last_mono = time.monotonic()
        last_heartbeat = last_mono
        last_orphan_check = last_mono
        last_dead_man_check = last_mono
        data_version = self._data_version()
        while not self._stop.is_set():
            now = utcnow()
            mono = time.monotonic()
            self.last_loop_monotonic, self.last_tick_wall = mono, now
            self._notice_suspend(now, last_wall, mono - last_mono)
            last_wall, last_mono = now, mono
            try:
                if mono - last_heartbeat >= HEARTBEAT_EVERY and not self._files_in_place():
                    break
                if self.write_trouble is not None:
                    self._heartbeat()  # the probe: raises while the database cannot be written
                    self._write_recovered()
                self._step(now)
                self.notifier.watchdog(mono)  # from the loop: a stuck loop stops the pings
                if mono - last_heartbeat >= HEARTBEAT_EVERY:
                    last_heartbeat = mono
                    self._heartbeat()
                    if self.notifier.enabled:
                        self.notifier.status(self._status_line())
                if mono - last_orphan_check >= ORPHAN_CHECK_EVERY:
                    last_orphan_check = mono
                    self._spawn_background(self._check_orphans())
                if mono - last_dead_man_check >= DEAD_MAN_CHECK_EVERY:
                    last_dead_man_check = mono
                    self._check_dead_men(now)
                timeout = self._sleep_for(utcnow())
            except Exception as exc:  # one failing step is logged; the loop goes on
                if self._cannot_write(exc):
                    timeout = WRITE_RETRY
                else:
                    log.exception("scheduling step failed")
                    timeout = IDLE_POLL
            data_version = await self._sleep(timeout, data_version)

    def _files_in_place(self) -> bool:
        """Is the database still the file we opened, and the lock still ours? If not (deleted,
        replaced), stop: firing on would write history nobody reads, and a second daemon
        may lock the new file. A non-zero exit has systemd start us on the right one."""
        assert self.db_identity is not None
        problem = moved_away(self.config.db_path, self.db_identity, "database file")
        problem = problem or self.lock.lost()
        if problem is None:
            return True
        log.critical("%s while the daemon ran: stopping (exit %d)", problem, FILES_LOST_EXIT)
        if self.notifier.enabled:
            self.notifier.status(f"stopping: {problem}")
        self.exit_code = FILES_LOST_EXIT
        self._stop.set()
        return False

    def _cannot_write(self, exc: BaseException) -> bool:
        """True for a database that cannot be written (disk full, I/O error): logged once
        when it starts and once a minute while it lasts, and shown by /healthz and the
        systemd STATUS line; nothing fires, as no run row can be written first."""
        if not isinstance(exc, StoreError):
            return False
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in (_SQLITE_FULL, _SQLITE_IOERR):
            return False
        mono = time.monotonic()
        if self.write_trouble is None:
            self.write_trouble = f"cannot write the database ({exc})"
            self._trouble_since = self._trouble_logged = mono
            log.error(
                "%s: nothing fires until it can; trying again every %s",
                self.write_trouble,
                format_duration(WRITE_RETRY),
            )
        elif mono - self._trouble_logged >= TROUBLE_LOG_EVERY:
            self._trouble_logged = mono
            log.error("still %s, for %s", self.write_trouble, self._trouble_age())
        else:
            return True
        if self.notifier.enabled:
            self.notifier.status(self._status_line())
        return True

    def _write_recovered(self) -> None:
        if self.write_trouble is None:
            return
        log.warning("the database can be written again, after %s", self._trouble_age())
        self.write_trouble = None
        # Nothing fired meanwhile: those slots are a gap (one missed row each, then the
        # catch-up policy), not a run per slot skipped behind a run that is not running.
        self.awake_since, self.gap_cause = utcnow(), CANNOT_WRITE
        if self.notifier.enabled:
            self.notifier.status(self._status_line())

    def _trouble_age(self) -> str:
        return format_duration(max(1, round(time.monotonic() - self._trouble_since)))

    def _notice_suspend(self, now: datetime, last_wall: datetime, mono_elapsed: float) -> None:
        jump = (now - last_wall).total_seconds() - mono_elapsed
        if jump > SUSPEND_THRESHOLD:
            log.warning(
                "the clock jumped %s ahead (machine asleep?): slots in between are missed",
                format_duration(round(jump)),
            )
            self.awake_since, self.gap_cause = now, NO_DAEMON

    def _step(self, now: datetime) -> None:
        assert self.store is not None
        # Record what has finished first, so that a run that is over does not count as
        # in flight for the overlap policy.
        self._flush()
        step = engine.claim_due(
            self.store,
            now,
            awake_since=self.awake_since,
            owner=self.owner,
            gap_cause=self.gap_cause,
        )
        self.ticks += 1
        for name, count, first, last, cause in step.missed:
            log.warning(
                "%s: missed %d slot(s) from %s to %s: %s",
                name,
                count,
                iso_z(first),
                iso_z(last),
                cause,
            )
        for name, reason in step.broken:
            log.error("%s: %s", name, reason)
        for name, slot, trigger in step.skipped:
            log.warning(
                "%s: skipped the %s slot %s: the previous run is still running",
                name,
                trigger,
                iso_z(slot),
            )
        for name, slot in step.queued:
            log.info("%s: queued the slot %s behind the run in flight", name, iso_z(slot))
        for claim in step.claims:
            self._tasks[claim.run_id] = asyncio.create_task(self._fire(claim))

    def _sleep_for(self, now: datetime) -> float:
        assert self.store is not None
        wake = engine.next_wake(self.store)
        if wake is None:
            return IDLE_POLL
        until = (wake - now).total_seconds()
        if until <= 0:
            return 0.0  # still due (a burst larger than one claim batch): go on at once
        return max(MIN_TICK, min(IDLE_POLL, until))

    async def _sleep(self, timeout: float, data_version: int) -> int:
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
            current = self._data_version()
            if current != data_version:
                return current

    def _data_version(self) -> int:
        assert self.store is not None
        return self.store.data_version()

    def _heartbeat(self, *, first: bool = False) -> None:
        assert self.store is not None
        now = utcnow()
        if first:
            self.store.heartbeat_start(
                pid=self.owner.pid,
                host=self.owner.host,
                started_at=self.started_at,
                now=now,
                listen=self.listener.url if self.listener else None,
                log_file=str(self.config.log.file) if self.config.log.file else None,
            )
        else:
            self.store.heartbeat(now)

    async def _check_orphans(self) -> None:
        """A `jobctl run` killed mid-run leaves a row whose owner is gone: end its command's
        process group (waiting out the grace in a thread, not in the loop), interrupt it."""
        assert self.store is not None
        try:
            groups = runs.orphaned_groups(self.store)
            ended: dict[int, str] = {}
            if groups:
                from jobctl.processes import ORPHAN_GRACE, end_groups

                ended = await asyncio.to_thread(end_groups, groups, ORPHAN_GRACE)
            self._recover(ended)
        except StoreError:
            log.exception("orphan check failed")

    def _spawn_background(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _record_process(self, run_id: int, pid: int) -> None:
        assert self.store is not None
        try:
            with self.store.write():
                runs.record_process_group(self.store, run_id, pid)
        except StoreError as exc:
            log.warning("run %d: could not record its process group %d: %s", run_id, pid, exc)

    # -------------------------------------------------------------------- firing

    async def _fire(self, claim: engine.Claim) -> None:
        assert self._runner is not None
        try:
            outcome = await self._runner.fire(claim, self.env)
        finally:
            self._tasks.pop(claim.run_id, None)
        self._finished.append((claim, outcome))
        self._finished_ready.set()

    async def _prune_loop(self) -> None:
        """Apply each job's retention every minute; yield to firing between batches."""
        from jobctl.history import jobs_to_prune, prune_runs

        assert self.store is not None
        since = datetime.fromtimestamp(0, UTC)  # the first pass looks at every job with runs
        while True:
            await asyncio.sleep(PRUNE_EVERY)
            removed = 0
            started = utcnow()
            try:
                job_ids = jobs_to_prune(self.store, since)
                since = started
                for count in prune_runs(self.store, started, job_ids=job_ids, batch=200):
                    removed += count
                    await asyncio.sleep(0)
            except Exception as exc:  # retention must never stop for good
                if not self._cannot_write(exc):
                    log.exception("pruning runs failed")
            if removed:
                log.debug("pruned %d old runs", removed)

    async def _flush_loop(self) -> None:
        while True:
            await self._finished_ready.wait()
            await asyncio.sleep(FLUSH_DELAY)
            self._finished_ready.clear()
            try:
                self._flush()
            except Exception as exc:
                if not self._cannot_write(exc):
                    log.exception("recording outcomes failed; will retry")
                self._finished_ready.set()
                await asyncio.sleep(WRITE_RETRY)

    def _flush(self) -> None:
        assert self.store is not None
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        try:
            recorded = engine.record_outcomes(self.store, batch, utcnow())
        except BaseException:
            self._finished = batch + self._finished
            raise
        for item in recorded:
            self._log_outcome(item)
            if item.notice is not None:
                self._send(item.notice)
            outcome = item.outcome
            self.metrics.record(
                item.claim.job.name,
                outcome.status,
                outcome.duration_ms / 1000,
                (outcome.started_at - item.claim.scheduled_for).total_seconds(),
            )
        self._wake.set()  # queued runs and retries may now be due

    # ------------------------------------------------------------- notifications

    def _check_dead_men(self, now: datetime) -> None:
        """Alert once when a job with --alert-if-no-success has not succeeded for that long."""
        assert self.store is not None
        for text, notice in engine.dead_man_alerts(self.store, now):
            log.warning("%s", text)
            self._send(notice)

    def _send(self, notice: engine.Notice) -> None:
        if notice.events:
            self._spawn_background(self._deliver(notice))

    async def _deliver(self, notice: engine.Notice) -> None:
        """POST each payload; log failures; keep the answers on the run they are about."""
        assert self._runner is not None and self.store is not None
        http = self._runner.firers.http
        results = await asyncio.gather(
            *(http.post_json(url, payload, self.env) for url, payload in notice.events)
        )
        for result in results:
            if not result["ok"]:
                log.warning("%s to %s failed: %s", notice.kind, result["url"], result["error"])
        if notice.run_id is None:
            return
        try:
            self.store.record_notifications(notice.run_id, results)
        except StoreError:
            log.exception("recording notification results failed")

    @staticmethod
    def _log_outcome(item: engine.Recorded) -> None:
        claim, outcome = item.claim, item.outcome
        code = (
            f" http {outcome.http_status}"
            if outcome.http_status is not None
            else f" exit {outcome.exit_code}"
            if outcome.exit_code is not None
            else ""
        )
        late = (outcome.started_at - claim.scheduled_for).total_seconds() * 1000
        level = logging.INFO if outcome.status == "succeeded" else logging.WARNING
        log.log(
            level,
            "%s run %d %s%s in %d ms (attempt %d, %s, %d ms late)%s",
            claim.job.name,
            claim.run_id,
            outcome.status,
            code,
            outcome.duration_ms,
            claim.attempt,
            claim.trigger,
            max(0, late),
            f": {outcome.error}" if outcome.error else "",
        )
        if item.retry_at is not None:
            log.info("%s: retry %d at %s", claim.job.name, claim.attempt + 1, iso_z(item.retry_at))
        if item.auto_paused:
            log.warning("%s: auto-paused after too many failures in a row", claim.job.name)
        for name in item.chained:
            log.info("%s: queued after run %d of %s", name, claim.run_id, claim.job.name)
