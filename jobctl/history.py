"""Reading run history: filtered listings, per-job stats, the status summary, retention."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jobctl.catalog import get_job
from jobctl.errors import InvalidInput
from jobctl.listing import STRIP_LENGTH, strip_text, success_rate
from jobctl.models import EXECUTED, FAILURES, Job, Run, RunSelection, RunStatus, RunTrigger
from jobctl.runs import STATUSES, TRIGGERS
from jobctl.store import Store
from jobctl.timeutil import get_zone, local_zone_name, parse_duration, parse_time, utcnow

STATS_WINDOW = 100  # durations of the last this-many runs feed avg and p95 in `show`
LIST_STATS_WINDOW = 20  # `list` reads fewer per job: 1,000 jobs x 100 runs took 150 ms
PRUNE_BATCH = 500
EVENT_RETENTION = timedelta(days=7)  # the daemon forgets older events
ADHOC_KEEP = 1000  # ad hoc runs have no job to say how many to keep: the default `keep`


@dataclass
class RunFilter:
    job: str | None = None
    statuses: Sequence[str] = ()
    triggers: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 20  # 0: no limit
    after_id: int | None = None
    before_id: int | None = None  # the API's cursor: only runs older than this id
    adhoc: bool = False  # only ad hoc runs (`jobctl run --exec ...`, no job)


MOMENT_FORMS = (
    "use a duration ago like 24h or 30m, a local time like 2026-12-01 09:00, "
    "or ISO-8601 with an offset, like 2026-12-01T09:00:00+01:00"
)


def parse_moment(text: str, now: datetime, *, what: str) -> datetime:
    """`24h` (that long ago) or a time (ISO-8601, or local `YYYY-MM-DD HH:MM`)."""
    try:
        return now - parse_duration(text, what=what)
    except InvalidInput:
        return parse_time(text, get_zone(local_zone_name()), what=what, forms=MOMENT_FORMS)


def validate_filter_values(statuses: Iterable[str], triggers: Iterable[str]) -> None:
    for status in statuses:
        if status not in STATUSES:
            raise InvalidInput(f"invalid --status {status!r}: choose from {', '.join(STATUSES)}")
    for trigger in triggers:
        if trigger not in TRIGGERS:
            raise InvalidInput(f"invalid --trigger {trigger!r}: choose from {', '.join(TRIGGERS)}")


def _job_named(store: Store, name: str) -> Job:
    """The job called `name`, or NotFound naming the closest one."""
    return get_job(store, name)


def list_runs(store: Store, where: RunFilter) -> list[Run]:
    """Runs newest first, filtered (the store reads them from an index, never a sort)."""
    job_id = _job_named(store, where.job).id if where.job is not None else None
    return store.list_runs(
        RunSelection(
            job_id=job_id,
            statuses=[RunStatus(status) for status in where.statuses],
            triggers=[RunTrigger(trigger) for trigger in where.triggers],
            since=where.since,
            until=where.until,
            limit=where.limit,
            after_id=where.after_id,
            before_id=where.before_id,
            adhoc=where.adhoc,
        )
    )


# ------------------------------------------------------------------------------- stats


@dataclass
class JobStats:
    success_rate: float | None = None  # lifetime: succeeded / executed
    avg_duration_ms: int | None = None
    p95_duration_ms: int | None = None
    recent: list[str] = field(default_factory=list)  # statuses, oldest first

    def strip(self, unicode: bool = True) -> str:
        return strip_text(self.recent, unicode)


def job_stats(store: Store, job: Job, window: int = STATS_WINDOW) -> JobStats:
    """Stats from the job's counters and its newest runs (one covering-index query)."""
    assert job.id is not None
    return stats_of(job, store.recent_outcomes(job.id, window))


def jobs_stats(store: Store, jobs: Sequence[Job], window: int) -> list[JobStats]:
    """job_stats of each job, their newest runs read together (in one statement where the
    store's round trips cost: PostgreSQL)."""
    outcomes = store.recent_outcomes_by_job([job.id for job in jobs if job.id is not None], window)
    return [stats_of(job, outcomes.get(job.id or 0, [])) for job in jobs]


def stats_of(job: Job, outcomes: Sequence[tuple[RunStatus, int | None]]) -> JobStats:
    """Stats from the job's counters and its newest runs' outcomes, newest first."""
    stats = JobStats(success_rate=success_rate(job.runs_succeeded, job.runs_total))
    stats.recent = [status.value for status, _ in outcomes[:STRIP_LENGTH]][::-1]
    durations = sorted(
        duration for status, duration in outcomes if status in EXECUTED and duration is not None
    )
    if durations:
        stats.avg_duration_ms = round(sum(durations) / len(durations))
        stats.p95_duration_ms = durations[
            min(len(durations) - 1, max(0, round(0.95 * len(durations)) - 1))
        ]
    return stats


def stats_to_dict(stats: JobStats) -> dict[str, object]:
    return {
        "success_rate": stats.success_rate,
        "avg_duration_ms": stats.avg_duration_ms,
        "p95_duration_ms": stats.p95_duration_ms,
        "recent": stats.recent,
    }


# ------------------------------------------------------------------------------ status


FINISHED = tuple(status for status in RunStatus if not status.in_flight)


def status_summary(
    store: Store, now: datetime, *, daemon_running: bool, upcoming: int = 5
) -> dict[str, Any]:
    """The contract's `status --json` document (the daemon block filled by the caller).

    The 24-hour figures count runs that finished in the window, by status, whenever they
    were created; `failed_24h` is the sum of the failure statuses (failed, timed_out,
    interrupted), `missed_24h` the missed slots.
    """
    from jobctl.timeutil import iso_z

    counts = {"enabled": 0, "paused": 0, "completed": 0}
    for state, count in store.job_counts_by_state().items():
        counts[state] = count
    window = finished_since(store, now - timedelta(hours=24))
    daemon = store.daemon_row()
    return {
        "daemon": {
            "running": daemon_running,
            "pid": daemon.pid if daemon and daemon_running else None,
            "host": daemon.host if daemon and daemon_running else None,
            "started_at": iso_z(daemon.started_at) if daemon else None,
            "last_tick_at": iso_z(daemon.last_tick_at) if daemon else None,
            "listen": daemon.listen if daemon and daemon_running else None,
        },
        "jobs": counts,
        "failed_24h": sum(window.counts[status] for status in FAILURES),
        "missed_24h": window.missed_slots,
        "counts_24h": window.counts,
        "failing_jobs": window.failing_jobs(store),
        "auto_paused": [
            {"job": name, "reason": reason} for name, reason in store.auto_paused_jobs()
        ],
        "upcoming": [
            {"job": name, "at": iso_z(at)} for name, at in upcoming_fires(store, now, upcoming)
        ],
    }


@dataclass
class FinishedRuns:
    """What finished in a window: counts by status, missed slots, failures per job."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISHED, 0))
    missed_slots: int = 0
    failures: dict[int, int] = field(default_factory=dict)  # job id -> failed runs

    def failing_jobs(self, store: Store) -> list[dict[str, Any]]:
        """`{"job", "failures"}` for each job that failed in the window, most failures first."""
        names = store.job_names_by_id(self.failures)
        failing = [
            {"job": names[job_id], "failures": count}
            for job_id, count in self.failures.items()
            if job_id in names
        ]
        return sorted(failing, key=lambda item: (-item["failures"], item["job"]))

    def add(self, status: RunStatus, job_id: int, count: int, slots: int) -> None:
        self.counts[status] = self.counts.get(status, 0) + count
        if status in FAILURES:
            self.failures[job_id] = self.failures.get(job_id, 0) + count
        if status == RunStatus.MISSED:
            self.missed_slots += slots


def finished_since(store: Store, since: datetime) -> FinishedRuns:
    """Runs whose finished_at is at or after `since`: failures and missed slots per job
    (which jobs failed, how many slots went by), the other statuses only counted."""
    result = FinishedRuns()
    per_job = {*FAILURES, RunStatus.MISSED}
    for item in store.count_finished_since(since, FINISHED, by_job=per_job):
        result.add(item.status, item.job_id or 0, item.runs, item.slots)
    return result


def upcoming_fires(store: Store, now: datetime, count: int) -> list[tuple[str, datetime]]:
    """The next `count` fires across all jobs (a frequent job may fill several)."""
    fires: list[tuple[datetime, str]] = []
    for job in store.jobs_next_to_fire(count):
        timetable = job.build_schedule()
        moment: datetime | None = job.next_run_at
        assert moment is not None
        if moment < now and timetable is not None:  # no daemon ran: those slots are not coming
            moment = timetable.next_after(now)
            if moment is None:
                continue
        fires.append((moment, job.name))
        for _ in range(count - 1):
            moment = timetable.next_after(moment) if timetable is not None and moment else None
            if moment is None:
                break
            fires.append((moment, job.name))
    fires.sort()
    return [(name, at) for at, name in fires[:count]]


# --------------------------------------------------------------------------- retention


def _prune_job(
    store: Store, job_id: int | None, keep: int | None, older_than: datetime | None, batch: int
) -> int:
    """One batch of a job's old runs (the ad hoc runs', for None) deleted; how many."""
    removed = 0
    if keep == 0:
        removed += store.delete_finished_runs(job_id, batch)
    elif keep is not None:
        # The id of the keep-th newest row: everything older goes.
        boundary = (
            store.nth_newest_run_id(job_id, keep)
            if job_id is not None
            else store.nth_newest_adhoc_run_id(keep)
        )
        if boundary is not None:
            removed += store.delete_finished_runs(job_id, batch, below_id=boundary)
    if older_than is not None and removed < batch:
        removed += store.delete_finished_runs(job_id, batch - removed, created_before=older_than)
    return removed


def jobs_to_prune(store: Store, since: datetime) -> list[int]:
    """Jobs that may be over their retention: new rows since `since`, or a `keep_for`."""
    return store.jobs_with_runs_finished_since(since)


def prune_runs(
    store: Store,
    now: datetime,
    *,
    job: str | None = None,
    keep: int | None = None,
    older_than: timedelta | None = None,
    job_ids: Iterable[int] | None = None,
    batch: int = PRUNE_BATCH,
) -> Iterator[int]:
    """Delete old runs in small transactions, yielding each batch's count.

    With neither `keep` nor `older_than`, each job's own `keep` and `keep_for` apply, and
    the newest ADHOC_KEEP ad hoc runs are kept. Without `job`, ad hoc runs are pruned too.
    Counters are lifetime figures and are not lowered.
    """
    jobs = [_job_named(store, job)] if job else store.jobs_by_id(job_ids)
    given = keep is not None or older_than is not None
    for item in jobs:
        assert item.id is not None
        policy = item.effective_policies()
        job_keep = keep if given else policy.keep
        cutoff = (
            older_than
            if given
            else (timedelta(seconds=policy.keep_for) if policy.keep_for else None)
        )
        yield from _prune_batches(store, item.id, job_keep, now, cutoff, batch)
    if not job:
        yield from _prune_batches(
            store, None, keep if given else ADHOC_KEEP, now, older_than, batch
        )


def _prune_batches(
    store: Store,
    job_id: int | None,
    keep: int | None,
    now: datetime,
    cutoff: timedelta | None,
    batch: int,
) -> Iterator[int]:
    while True:
        with store.write():
            removed = _prune_job(
                store, job_id, keep, now - cutoff if cutoff is not None else None, batch
            )
        if removed:
            yield removed
        if removed < batch:
            break


async def prune_forever(
    store: Store, every: float, cannot_write: Callable[[BaseException], bool]
) -> None:
    """The daemon's retention: each job's `--keep`/`--keep-for` applied every `every`
    seconds, in small batches that yield to firing (`cannot_write` logs a failure it knows)."""
    import asyncio  # here: the commands that read history never pay for asyncio
    import logging

    log = logging.getLogger("jobctl.daemon")
    since = datetime.fromtimestamp(0, UTC)  # the first pass looks at every job with runs
    while True:
        await asyncio.sleep(every)
        removed = 0
        started = utcnow()
        try:
            job_ids = jobs_to_prune(store, since)
            since = started
            for count in prune_runs(store, started, job_ids=job_ids, batch=200):
                removed += count
                await asyncio.sleep(0)
        except Exception as exc:  # retention must never stop for good
            if not cannot_write(exc):
                log.exception("pruning runs failed")
        if removed:
            log.debug("pruned %d old runs", removed)
        try:
            prune_events(store, started)
        except Exception as exc:
            if not cannot_write(exc):
                log.exception("pruning events failed")


def prune_events(store: Store, now: datetime) -> int:
    """Forget the events older than EVENT_RETENTION (own transaction); returns how many."""
    with store.write():
        return store.delete_events_before(now - EVENT_RETENTION)


def clear_runs(store: Store, name: str) -> int:
    """Delete every finished run of a job and reset its counters."""
    with store.write():
        job = _job_named(store, name)
        assert job.id is not None
        return store.clear_history(job.id)
