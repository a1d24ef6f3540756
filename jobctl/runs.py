"""Run rows: writing them before a fire, finishing them after, and marking orphans.

Every function here runs inside the caller's write transaction unless it says otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl import processes
from jobctl.models import FAILURES, Run, RunStatus, RunTrigger
from jobctl.store.sqlite import write_transaction
from jobctl.timeutil import from_db, to_db

if TYPE_CHECKING:
    from jobctl.store import Store

STATUSES = tuple(m.value for m in RunStatus)
TRIGGERS = tuple(m.value for m in RunTrigger)

# The node name, as socket.gethostname() gives it, without importing socket (10 ms at start-up).
HOST = os.uname().nodename


@dataclass(frozen=True)
class Owner:
    """The process that runs a fire: orphans are found by checking it still exists."""

    pid: int
    host: str

    @classmethod
    def this_process(cls) -> Owner:
        return cls(os.getpid(), HOST)


def insert_run(
    conn: sqlite3.Connection,
    *,
    job_id: int,
    trigger: str,
    status: str,
    scheduled_for: datetime,
    now: datetime,
    attempt: int = 1,
    owner: Owner | None = None,
    due_at: datetime | None = None,
    error: str | None = None,
    details: dict[str, Any] | None = None,
    caused_by: int | None = None,
) -> int:
    started = to_db(now) if status == "running" else None
    finished = to_db(now) if status in ("skipped", "missed") else None
    cursor = conn.execute(
        "INSERT INTO runs (job_id, trigger, status, attempt, scheduled_for, started_at, "
        "finished_at, error, details, owner_pid, owner_host, due_at, created_at, caused_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job_id,
            trigger,
            status,
            attempt,
            to_db(scheduled_for),
            started,
            finished,
            error,
            json.dumps(details) if details else None,
            owner.pid if owner else None,
            owner.host if owner else None,
            to_db(due_at) if due_at else None,
            to_db(now),
            caused_by,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def count_skipped(conn: sqlite3.Connection, job_id: int, count: int = 1) -> None:
    conn.execute("UPDATE jobs SET runs_skipped = runs_skipped + ? WHERE id = ?", (count, job_id))


def count_missed(conn: sqlite3.Connection, job_id: int, slots: int) -> None:
    conn.execute("UPDATE jobs SET runs_missed = runs_missed + ? WHERE id = ?", (slots, job_id))


def count_executed(
    conn: sqlite3.Connection, job_id: int, status: str, started_at: datetime, *, final: bool
) -> None:
    """Lifetime counters and last-run fields of the job; `final` = no retry follows."""
    succeeded = status == "succeeded"
    started = to_db(started_at)
    conn.execute(
        """
        UPDATE jobs SET
            runs_total = runs_total + 1,
            runs_succeeded = runs_succeeded + :ok,
            runs_failed = runs_failed + :failed,
            last_status = CASE WHEN last_run_at IS NULL OR last_run_at <= :started
                               THEN :status ELSE last_status END,
            last_run_at = max(coalesce(last_run_at, ''), :started),
            last_success_at = CASE WHEN :ok THEN max(coalesce(last_success_at, ''), :started)
                                   ELSE last_success_at END,
            consecutive_failures = CASE WHEN :ok THEN 0
                                        WHEN :final THEN consecutive_failures + 1
                                        ELSE consecutive_failures END,
            alerted_at = CASE WHEN :ok THEN NULL ELSE alerted_at END
        WHERE id = :job_id
        """,
        {
            "ok": int(succeeded),
            "failed": int(status in FAILURES),
            "started": started,
            "status": status,
            "final": int(final),
            "job_id": job_id,
        },
    )


def auto_pause_if_failing(
    conn: sqlite3.Connection, job_id: int, max_failures: int | None, now: datetime
) -> bool:
    """Pause an enabled job whose failures in a row reached its limit; True if it did."""
    if not max_failures:
        return False
    cursor = conn.execute(
        "UPDATE jobs SET state = 'paused', next_run_at = NULL, updated_at = ?, "
        "paused_reason = 'auto-paused after ' || consecutive_failures || ' failure' "
        "|| CASE consecutive_failures WHEN 1 THEN '' ELSE 's' END || ' in a row' "
        "WHERE id = ? AND state = 'enabled' AND consecutive_failures >= ?",
        (to_db(now), job_id, max_failures),
    )
    return cursor.rowcount > 0


def process_exists(pid: int, *, since: datetime | None = None) -> bool:
    """Whether process `pid` is alive and, when `since` is given, was already alive then.

    The second check keeps a reused pid (after a reboot, say) from passing for the owner.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    if since is None:
        return True
    started = _process_start(pid)
    return started is None or started <= since.timestamp() + 2


def _process_start(pid: int) -> float | None:
    """Start time of `pid` as a Unix timestamp, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime"))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Orphan:
    run_id: int
    job_id: int
    job: str
    trigger: str
    attempt: int
    scheduled_for: str


def mark_interrupted(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    run_ids: Iterable[int] | None = None,
    reason: str = "interrupted: the process running it stopped",
    ended: Mapping[int, str] | None = None,
) -> list[Orphan]:
    """Mark `running` rows interrupted: the given ones, or those whose owner is gone.

    Only owners on this host can be checked; rows of other hosts are left alone. A run's
    process group that may still live is ended first, so that no copy of its command runs
    on unsupervised: `ended` holds the notes of groups the caller already ended (with a
    grace, outside the transaction); any other is killed here at once.
    """
    rows = conn.execute(
        "SELECT runs.id, runs.job_id, jobs.name, runs.trigger, runs.attempt, "
        "runs.scheduled_for, runs.owner_pid, runs.owner_host, runs.started_at, "
        "runs.pgid, runs.pgid_started "
        "FROM runs JOIN jobs ON jobs.id = runs.job_id WHERE runs.status = 'running'"
    ).fetchall()
    wanted = set(run_ids) if run_ids is not None else None
    orphans = []
    for row in rows:
        if wanted is not None:
            if row["id"] not in wanted:
                continue
        elif not _owner_gone(row):
            continue
        note = (ended or {}).get(row["id"])
        group = _run_group(row)
        if note is None and group is not None and row["owner_host"] == HOST:
            note = processes.kill_group(group)
        conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?, "
            "duration_ms = CAST((julianday(?) - julianday(started_at)) * 86400000 AS INTEGER) "
            "WHERE id = ? AND status = 'running'",
            (to_db(now), f"{reason}; {note}" if note else reason, to_db(now), row["id"]),
        )
        started = row["started_at"]
        count_executed(
            conn, row["job_id"], "interrupted", from_db(started) if started else now, final=True
        )
        orphans.append(
            Orphan(
                row["id"],
                row["job_id"],
                row["name"],
                row["trigger"],
                row["attempt"],
                row["scheduled_for"],
            )
        )
    return orphans


def _owner_gone(row: sqlite3.Row) -> bool:
    if row["owner_host"] != HOST:
        return False
    since = from_db(row["started_at"]) if row["started_at"] else None
    return not process_exists(row["owner_pid"] or 0, since=since)


def _run_group(row: sqlite3.Row) -> processes.RunGroup | None:
    if row["pgid"] is None or row["pgid_started"] is None:
        return None
    return processes.RunGroup(row["id"], row["pgid"], row["pgid_started"])


def orphaned_groups(conn: sqlite3.Connection) -> list[processes.RunGroup]:
    """Read-only: the process groups of `running` rows whose owner on this host is gone."""
    rows = conn.execute(
        "SELECT id, owner_pid, owner_host, started_at, pgid, pgid_started FROM runs "
        "WHERE status = 'running' AND owner_host = ? AND pgid IS NOT NULL",
        (HOST,),
    ).fetchall()
    return [group for row in rows if _owner_gone(row) and (group := _run_group(row)) is not None]


def end_orphaned_groups(
    conn: sqlite3.Connection, grace: float = processes.ORPHAN_GRACE
) -> dict[int, str]:
    """No transaction: SIGTERM the groups of dead owners' runs, SIGKILL them after `grace`.

    Pass the result to mark_interrupted(ended=...). Until then the rows stay `running`, so
    the overlap policy starts no second copy while the first is being ended.
    """
    groups = orphaned_groups(conn)
    return processes.end_groups(groups, grace) if groups else {}


def record_process_group(conn: sqlite3.Connection, run_id: int, pgid: int) -> None:
    """The run's command started as the leader of group `pgid`: remember it (and when the
    leader started, so that a reused id is never taken for it) for whoever takes over."""
    conn.execute(
        "UPDATE runs SET pgid = ?, pgid_started = ? WHERE id = ? AND status = 'running'",
        (pgid, processes.start_ticks(pgid), run_id),
    )


def release_reserved(conn: sqlite3.Connection) -> int:
    """Queued retries kept by a `jobctl run` that died go to the daemon instead."""
    released = 0
    for row in conn.execute(
        "SELECT id, owner_pid FROM runs WHERE status = 'queued' AND owner_pid IS NOT NULL "
        "AND owner_host = ?",
        (HOST,),
    ).fetchall():
        if not process_exists(row["owner_pid"]):
            conn.execute(
                "UPDATE runs SET owner_pid = NULL, owner_host = NULL WHERE id = ?", (row["id"],)
            )
            released += 1
    return released


def has_orphans(conn: sqlite3.Connection) -> bool:
    """Read-only: is some `running` row owned by a process of this host that is gone?"""
    for pid, started in conn.execute(
        "SELECT owner_pid, started_at FROM runs WHERE status = 'running' AND owner_host = ?",
        (HOST,),
    ):
        if not process_exists(pid or 0, since=from_db(started) if started else None):
            return True
    return False


def tidy_orphans(conn: sqlite3.Connection, now: datetime) -> None:
    """What any jobctl process does on its way: end dead owners' process groups and mark
    their runs interrupted."""
    try:
        if has_orphans(conn):
            mark_orphans(conn, now, ended=end_orphaned_groups(conn))
    except sqlite3.Error:  # a read-only database, or a busy one: the daemon will do it
        pass


def mark_orphans(
    conn: sqlite3.Connection, now: datetime, *, ended: Mapping[int, str] | None = None
) -> list[Orphan]:
    """Own transaction: interrupted rows for every dead owner on this host."""
    with write_transaction(conn):
        return mark_interrupted(conn, now, ended=ended)


# ------------------------------------------------------------------------------ reading


def get_run(store: Store, run_id: int) -> Run:
    """The run with its job's name, or NotFound."""
    from jobctl.errors import NotFound

    run = store.get_run(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id} (see `jobctl runs`)")
    return run


def run_details(run: Run) -> dict[str, Any]:
    """The run's details (what the action and jobctl noted about it), {} when none."""
    return dict(json.loads(run.details)) if run.details else {}


def run_to_dict(run: Run, *, full: bool = False) -> dict[str, Any]:
    """The contract's JSON form of a run; `full` adds the snapshot and details."""
    from jobctl.timeutil import iso_z

    data: dict[str, Any] = {
        "id": run.id,
        "job": run.job,
        "trigger": run.trigger,
        "status": run.status,
        "attempt": run.attempt,
        "scheduled_for": iso_z(run.scheduled_for),
        "started_at": iso_z(run.started_at),
        "finished_at": iso_z(run.finished_at),
        "duration_ms": run.duration_ms,
        "http_status": run.http_status,
        "exit_code": run.exit_code,
        "error": run.error,
        "output": run.output,
    }
    details = run_details(run)
    if run.status == RunStatus.MISSED:
        data["missed_count"] = details.get("missed_count")
        data["missed_until"] = details.get("missed_until")
    if full:
        data["snapshot"] = json.loads(run.snapshot) if run.snapshot else None
        data["details"] = details
        if run.started_at:
            lateness = run.started_at - run.scheduled_for
            data["lateness_ms"] = max(0, round(lateness.total_seconds() * 1000))
    return data
