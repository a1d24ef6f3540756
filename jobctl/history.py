"""Reading run history: filtered listings, per-job stats, the status summary, retention."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from jobctl.catalog import get_job
from jobctl.errors import InvalidInput
from jobctl.models import EXECUTED, FAILURES, Job
from jobctl.runs import RUN_COLUMNS, STATUSES, TRIGGERS
from jobctl.store.sqlite import SqliteStore, write_transaction
from jobctl.timeutil import from_db, get_zone, local_zone_name, parse_duration, parse_time, to_db

STATS_WINDOW = 100  # durations of the last this-many runs feed avg and p95 in `show`
LIST_STATS_WINDOW = 20  # `list` reads fewer per job: 1,000 jobs x 100 runs took 150 ms
STRIP_LENGTH = 10
PRUNE_BATCH = 500

STRIP_SYMBOLS = {
    "succeeded": ("✓", "+"),
    "failed": ("✗", "x"),
    "timed_out": ("✗", "x"),
    "interrupted": ("!", "!"),
    "skipped": ("·", "."),
    "missed": ("○", "o"),
    "running": ("…", ">"),
    "queued": ("…", ">"),
}


@dataclass
class RunFilter:
    job: str | None = None
    statuses: Sequence[str] = ()
    triggers: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 20  # 0: no limit
    after_id: int | None = None


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


def list_runs(conn: sqlite3.Connection, where: RunFilter) -> list[sqlite3.Row]:
    """Runs newest first, filtered; uses (job_id, id), (status, id) or the key, never a sort.

    Several statuses with a limit are read one (status, id) range each and merged: SQLite
    would otherwise sort every run with any of those statuses.
    """
    if len(where.statuses) > 1 and where.limit and where.job is None:
        merged = [
            row
            for status in dict.fromkeys(where.statuses)
            for row in list_runs(conn, replace(where, statuses=(status,)))
        ]
        merged.sort(key=lambda row: row["id"], reverse=True)
        return merged[: where.limit]
    clauses: list[str] = []
    params: list[Any] = []
    if where.job is not None:
        job = get_job(SqliteStore(conn), where.job)
        clauses.append("runs.job_id = ?")
        params.append(job.id)
    if where.statuses:
        clauses.append(f"runs.status IN ({', '.join('?' * len(where.statuses))})")
        params.extend(where.statuses)
    if where.triggers:
        clauses.append(f"runs.trigger IN ({', '.join('?' * len(where.triggers))})")
        params.extend(where.triggers)
    if where.since is not None:
        # The id bound lets SQLite start at the window instead of scanning all history.
        clauses.append("runs.id >= ? AND runs.created_at >= ?")
        params.extend((first_run_since(conn, to_db(where.since)), to_db(where.since)))
    if where.until is not None:
        clauses.append("runs.created_at <= ?")
        params.append(to_db(where.until))
    if where.after_id is not None:
        clauses.append("runs.id > ?")
        params.append(where.after_id)
    sql = f"SELECT {RUN_COLUMNS} FROM runs JOIN jobs ON jobs.id = runs.job_id"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY runs.id DESC"
    if where.limit:
        sql += " LIMIT ?"
        params.append(where.limit)
    return conn.execute(sql, params).fetchall()


def runs_by_id(conn: sqlite3.Connection, ids: Iterable[int]) -> list[sqlite3.Row]:
    wanted = list(ids)
    if not wanted:
        return []
    return conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs JOIN jobs ON jobs.id = runs.job_id "
        f"WHERE runs.id IN ({', '.join('?' * len(wanted))}) ORDER BY runs.id",
        wanted,
    ).fetchall()


# ------------------------------------------------------------------------------- stats


@dataclass
class JobStats:
    success_rate: float | None = None  # lifetime: succeeded / executed
    avg_duration_ms: int | None = None
    p95_duration_ms: int | None = None
    recent: list[str] = field(default_factory=list)  # statuses, oldest first

    def strip(self, unicode: bool = True) -> str:
        column = 0 if unicode else 1
        return "".join(STRIP_SYMBOLS.get(status, ("?", "?"))[column] for status in self.recent)


def job_stats(conn: sqlite3.Connection, job: Job, window: int = STATS_WINDOW) -> JobStats:
    """Stats from the job's counters and its newest runs (one covering-index query)."""
    rows = conn.execute(
        "SELECT status, duration_ms FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT ?",
        (job.id, window),
    ).fetchall()
    stats = JobStats()
    if job.runs_total:
        stats.success_rate = round(job.runs_succeeded / job.runs_total, 4)
    stats.recent = [row[0] for row in rows[:STRIP_LENGTH]][::-1]
    durations = sorted(row[1] for row in rows if row[0] in EXECUTED and row[1] is not None)
    if durations:
        stats.avg_duration_ms = round(sum(durations) / len(durations))
        stats.p95_duration_ms = durations[
            min(len(durations) - 1, max(0, round(0.95 * len(durations)) - 1))
        ]
    return stats


def stats_to_dict(stats: JobStats) -> dict[str, Any]:
    return {
        "success_rate": stats.success_rate,
        "avg_duration_ms": stats.avg_duration_ms,
        "p95_duration_ms": stats.p95_duration_ms,
        "recent": stats.recent,
    }


# ------------------------------------------------------------------------------ status


FINISHED = tuple(status for status in STATUSES if status not in ("queued", "running"))


def status_summary(
    conn: sqlite3.Connection, now: datetime, *, daemon_running: bool, upcoming: int = 5
) -> dict[str, Any]:
    """The contract's `status --json` document (the daemon block filled by the caller).

    The 24-hour figures count runs that finished in the window, by status, whenever they
    were created; `failed_24h` is the sum of the failure statuses (failed, timed_out,
    interrupted), `missed_24h` the missed slots.
    """
    from jobctl.timeutil import iso_z

    counts = {"enabled": 0, "paused": 0, "completed": 0}
    for state, count in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state"):
        counts[state] = count
    window = finished_since(conn, now - timedelta(hours=24))
    daemon = conn.execute("SELECT * FROM daemon WHERE id = 1").fetchone()
    return {
        "daemon": {
            "running": daemon_running,
            "pid": daemon["pid"] if daemon and daemon_running else None,
            "host": daemon["host"] if daemon and daemon_running else None,
            "started_at": iso_z(from_db(daemon["started_at"])) if daemon else None,
            "last_tick_at": iso_z(from_db(daemon["last_tick_at"])) if daemon else None,
            "listen": daemon["listen"] if daemon and daemon_running else None,
        },
        "jobs": counts,
        "failed_24h": sum(window.counts[status] for status in FAILURES),
        "missed_24h": window.missed_slots,
        "counts_24h": window.counts,
        "failing_jobs": window.failing_jobs(conn),
        "auto_paused": [
            {"job": name, "reason": reason}
            for name, reason in conn.execute(
                "SELECT name, paused_reason FROM jobs WHERE state = 'paused' "
                "AND paused_reason IS NOT NULL ORDER BY name"
            )
        ],
        "upcoming": [
            {"job": name, "at": iso_z(at)} for name, at in upcoming_fires(conn, now, upcoming)
        ],
    }


@dataclass
class FinishedRuns:
    """What finished in a window: counts by status, missed slots, failures per job."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISHED, 0))
    missed_slots: int = 0
    failures: dict[int, int] = field(default_factory=dict)  # job id -> failed runs

    def failing_jobs(self, conn: sqlite3.Connection) -> list[dict[str, Any]]:
        """`{"job", "failures"}` for each job that failed in the window, most failures first."""
        names = dict(
            conn.execute(
                f"SELECT id, name FROM jobs WHERE id IN ({', '.join('?' * len(self.failures))})",
                list(self.failures),
            ).fetchall()
        )
        failing = [
            {"job": names[job_id], "failures": count}
            for job_id, count in self.failures.items()
            if job_id in names
        ]
        return sorted(failing, key=lambda item: (-item["failures"], item["job"]))

    def add(self, status: str, job_id: int, count: int, slots: int) -> None:
        self.counts[status] = self.counts.get(status, 0) + count
        if status in FAILURES:
            self.failures[job_id] = self.failures.get(job_id, 0) + count
        if status == "missed":
            self.missed_slots += slots


def finished_since(conn: sqlite3.Connection, since: datetime) -> FinishedRuns:
    """Runs whose finished_at is at or after `since`, without reading a day of rows.

    Runs created in the window are counted from the (status, id) index alone (they finished
    after they were created); failures and missed rows, which are few, are read for their
    job and slot count. Runs created before the window and finished in it (long ones) come
    from the finished_at index, whose entries carry the id.
    """
    start = to_db(since)
    first = first_run_since(conn, start)
    result = FinishedRuns()
    slots = "coalesce(json_extract(details, '$.missed_count'), 1)"
    for status in FINISHED:
        if status in FAILURES or status == "missed":
            rows = conn.execute(
                f"SELECT job_id, count(*), sum({slots}) FROM runs "
                "WHERE status = ? AND id >= ? GROUP BY job_id",
                (status, first),
            ).fetchall()
            for job_id, count, missed in rows:
                result.add(status, job_id, count, missed)
        else:
            count = conn.execute(
                "SELECT count(*) FROM runs WHERE status = ? AND id >= ?", (status, first)
            ).fetchone()[0]
            result.add(status, 0, count, 0)
    # `+id`: the id bound must not pick the key over the finished_at index.
    for status, job_id, count, missed in conn.execute(
        f"SELECT status, job_id, count(*), sum({slots}) FROM runs INDEXED BY runs_finished_at "
        "WHERE finished_at >= ? AND +id < ? GROUP BY status, job_id",
        (start, first),
    ):
        result.add(status, job_id, count, missed)
    return result


def first_run_since(conn: sqlite3.Connection, since: str) -> int:
    """The id of the first run created at or after `since`, by binary search on the key.

    Ids grow with creation time, so about 23 point lookups find it among millions of runs.
    Runs created before and finished after `since` (very long ones) fall outside.
    """
    # Two statements: SQLite reads min() and max() from the key only one at a time.
    low = conn.execute("SELECT coalesce(min(id), 1) FROM runs").fetchone()[0]
    high = conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]
    while low <= high:
        middle = (low + high) // 2
        row = conn.execute(
            "SELECT id, created_at FROM runs WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        ).fetchone()
        if row is None or row[1] >= since:
            high = middle - 1
        else:
            low = row[0] + 1
    return int(low)


def upcoming_fires(
    conn: sqlite3.Connection, now: datetime, count: int
) -> list[tuple[str, datetime]]:
    """The next `count` fires across all jobs (a frequent job may fill several)."""
    rows = conn.execute(
        "SELECT * FROM jobs WHERE state = 'enabled' AND next_run_at IS NOT NULL "
        "ORDER BY next_run_at LIMIT ?",
        (count,),
    ).fetchall()
    fires: list[tuple[datetime, str]] = []
    for row in rows:
        job = Job.from_row(row)
        plan = job.build_schedule()
        moment: datetime | None = job.next_run_at
        assert moment is not None
        if moment < now and plan is not None:  # no daemon ran: those slots are not coming
            moment = plan.next_after(now)
            if moment is None:
                continue
        fires.append((moment, job.name))
        for _ in range(count - 1):
            moment = plan.next_after(moment) if plan is not None and moment else None
            if moment is None:
                break
            fires.append((moment, job.name))
    fires.sort()
    return [(name, at) for at, name in fires[:count]]


# --------------------------------------------------------------------------- retention


def _delete_batch(conn: sqlite3.Connection, where: str, params: Sequence[Any], batch: int) -> int:
    cursor = conn.execute(
        f"DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE {where} "
        f"AND status NOT IN ('running', 'queued') LIMIT ?)",
        (*params, batch),
    )
    return cursor.rowcount


def _prune_job(
    conn: sqlite3.Connection, job_id: int, keep: int | None, older_than: datetime | None, batch: int
) -> int:
    removed = 0
    if keep == 0:
        removed += _delete_batch(conn, "job_id = ?", (job_id,), batch)
    elif keep is not None:
        # The id of the keep-th newest row: everything older goes.
        row = conn.execute(
            "SELECT id FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (job_id, keep - 1),
        ).fetchone()
        if row is not None:
            removed += _delete_batch(conn, "job_id = ? AND id < ?", (job_id, row[0]), batch)
    if older_than is not None and removed < batch:
        removed += _delete_batch(
            conn, "job_id = ? AND created_at < ?", (job_id, to_db(older_than)), batch - removed
        )
    return removed


def jobs_to_prune(conn: sqlite3.Connection, since: datetime) -> list[int]:
    """Jobs that may be over their retention: new rows since `since`, or a `keep_for`."""
    rows = conn.execute(
        "SELECT DISTINCT job_id FROM runs WHERE finished_at >= ? "
        "UNION SELECT id FROM jobs WHERE policies LIKE '%\"keep_for\"%'",
        (to_db(since),),
    ).fetchall()
    return [row[0] for row in rows]


def prune_runs(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    job: str | None = None,
    keep: int | None = None,
    older_than: timedelta | None = None,
    job_ids: Iterable[int] | None = None,
    batch: int = PRUNE_BATCH,
) -> Iterator[int]:
    """Delete old runs in small transactions, yielding each batch's count.

    With neither `keep` nor `older_than`, each job's own `keep` and `keep_for` apply.
    Counters are lifetime figures and are not lowered.
    """
    if job:
        jobs = [get_job(SqliteStore(conn), job)]
    elif job_ids is not None:
        ids = list(job_ids)
        jobs = [
            Job.from_row(row)
            for start in range(0, len(ids), 500)
            for row in conn.execute(
                f"SELECT * FROM jobs WHERE id IN ({', '.join('?' * len(ids[start : start + 500]))})",
                ids[start : start + 500],
            )
        ]
    else:
        jobs = [Job.from_row(row) for row in conn.execute("SELECT * FROM jobs ORDER BY id")]
    for item in jobs:
        assert item.id is not None
        policy = item.effective_policies()
        job_keep = keep if (keep is not None or older_than is not None) else policy["keep"]
        cutoff = (
            older_than
            if (keep is not None or older_than is not None)
            else (timedelta(seconds=policy["keep_for"]) if policy["keep_for"] else None)
        )
        while True:
            with write_transaction(conn):
                removed = _prune_job(
                    conn, item.id, job_keep, now - cutoff if cutoff is not None else None, batch
                )
            if removed:
                yield removed
            if removed < batch:
                break


def clear_runs(conn: sqlite3.Connection, name: str) -> int:
    """Delete every finished run of a job and reset its counters."""
    with write_transaction(conn):
        job = get_job(SqliteStore(conn), name)
        removed = conn.execute(
            "DELETE FROM runs WHERE job_id = ? AND status NOT IN ('running', 'queued')",
            (job.id,),
        ).rowcount
        conn.execute(
            "UPDATE jobs SET runs_total = 0, runs_succeeded = 0, runs_failed = 0, "
            "runs_skipped = 0, runs_missed = 0, consecutive_failures = 0, last_run_at = NULL, "
            "last_status = NULL, last_success_at = NULL WHERE id = ?",
            (job.id,),
        )
    return int(removed)


def run_details(row: sqlite3.Row) -> dict[str, Any]:
    return dict(json.loads(row["details"])) if row["details"] else {}
