"""Claiming work on the daemon's path: due jobs, due queued runs, and what a claim reads.

Every operation runs inside the caller's write transaction; which slots are due, what a gap
means and what the overlap policy allows are the engine's rules.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.models import EventType, JobState, Owner, QueuedRun, RunTrigger, UnreadableJob
from jobctl.store.batches import SQLITE, BatchOps
from jobctl.store.sqlite.base import Connected
from jobctl.store.sqlite.events import job_event, job_run_event, run_started_event, short_error
from jobctl.store.sqlite.fleet import queue_filter
from jobctl.timeutil import from_db, iso_z, to_db, utcnow

if TYPE_CHECKING:
    from jobctl.models import Agent, Job


def _job_from_row() -> Callable[[sqlite3.Row | dict[str, Any]], Job]:
    # jobs.py still builds Job from a row; imported here until it no longer does.
    from jobctl.models import Job

    return Job.from_row


def _job(row: sqlite3.Row | dict[str, Any]) -> Job:
    return _job_from_row()(row)


class ClaimOps(Connected, BatchOps):
    dialect = SQLITE

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        return list(self.conn.execute(sql, params).fetchall())

    def _execute(self, sql: str, params: Sequence[object]) -> None:
        self.conn.execute(sql, params)

    def jobs_completed(self, job_ids: Collection[int]) -> None:
        now = utcnow()
        for job_id in job_ids:
            self._job_changed(job_id, now, {"state": JobState.COMPLETED.value})

    # ------------------------------------------------------------------------- due jobs

    def due_jobs(
        self, now: datetime, limit: int, queues: Sequence[str] = ()
    ) -> list[Job | UnreadableJob]:
        """Enabled jobs on `queues` (empty: every queue) whose next slot is at or before
        `now`, soonest first; a row that cannot be read comes back as UnreadableJob, so that
        one broken job stops no other."""
        on_queues, params = queue_filter(queues)
        cursor = self.conn.cursor()
        cursor.row_factory = None  # tuples made dicts: sqlite3.Row finds a name by a scan
        values = cursor.execute(
            f"SELECT * FROM jobs WHERE next_run_at <= ? AND state = ?{on_queues} "
            "ORDER BY next_run_at LIMIT ?",
            (to_db(now), JobState.ENABLED, *params, limit),
        ).fetchall()
        names = [column[0] for column in cursor.description]
        from_row = _job_from_row()  # once, not per row (an import costs ~0.5 µs)
        jobs: list[Job | UnreadableJob] = []
        for row in (dict(zip(names, value, strict=True)) for value in values):
            try:
                jobs.append(from_row(row))
            except Exception as exc:  # a broken row must not stop every other job from firing
                jobs.append(UnreadableJob(row["id"], row["name"], exc))
        return jobs

    def pause_unschedulable(self, job_id: int, reason: str) -> None:
        """Pause a job whose schedule cannot be computed, with `reason`."""
        self.conn.execute(
            "UPDATE jobs SET state = ?, paused_reason = ?, next_run_at = NULL WHERE id = ?",
            (JobState.PAUSED, reason, job_id),
        )
        self._job_changed(job_id, utcnow(), {"state": JobState.PAUSED.value, "reason": reason})

    def _job_changed(self, job_id: int, now: datetime, data: dict[str, str]) -> None:
        row = self.conn.execute("SELECT name FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None:
            job_event(self.conn, EventType.JOB_CHANGED, now, row[0], data)

    # ------------------------------------------------------------------- runs in flight

    def has_running(self, job_id: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM runs INDEXED BY runs_running WHERE job_id = ? AND status = 'running'",
            (job_id,),
        ).fetchone()
        return row is not None

    def has_queued(self, job_id: int) -> bool:
        """A queued run of the job waits, other than a retry."""
        row = self.conn.execute(
            "SELECT 1 FROM runs WHERE job_id = ? AND status = 'queued' AND trigger != 'retry'",
            (job_id,),
        ).fetchone()
        return row is not None

    # --------------------------------------------------------------------- queued runs

    def due_queued_runs(self, now: datetime, queues: Sequence[str] = ()) -> list[QueuedRun]:
        """Queued runs of jobs on `queues` (empty: every queue) nobody keeps whose due time
        is at or before `now`, oldest first."""
        on_queues, params = queue_filter(queues, "jobs.queue")
        rows = self.conn.execute(
            "SELECT runs.id AS run_id, runs.trigger AS run_trigger, runs.attempt, "
            "runs.scheduled_for AS slot, runs.details AS run_details, jobs.* "
            "FROM runs JOIN jobs ON jobs.id = runs.job_id "
            "WHERE runs.status = 'queued' AND runs.due_at <= ? AND runs.owner_pid IS NULL"
            f"{on_queues} ORDER BY runs.due_at, runs.id",
            (to_db(now), *params),
        ).fetchall()
        queued = []
        for row in rows:
            details = json.loads(row["run_details"]) if row["run_details"] else {}
            queued.append(
                QueuedRun(
                    run_id=row["run_id"],
                    trigger=RunTrigger(row["run_trigger"]),
                    attempt=row["attempt"],
                    scheduled_for=from_db(row["slot"]),
                    job=_job(row),
                    payload=details.get("payload"),
                    payload_type=details.get("payload_type"),
                )
            )
        return queued

    def start_queued_run(self, run_id: int, now: datetime, owner: Owner) -> bool:
        """A queued row becomes `running`, owned by `owner`, from `now`; False when it was
        no longer queued (another daemon started it)."""
        row = self.conn.execute(
            "UPDATE runs SET status = 'running', started_at = ?, owner_pid = ?, owner_host = ? "
            "WHERE id = ? AND status = 'queued' RETURNING job_id, trigger, attempt, scheduled_for",
            (to_db(now), owner.pid, owner.host, run_id),
        ).fetchone()
        if row is None:
            return False
        self._started_event(run_id, now, row)
        return True

    def _started_event(self, run_id: int, now: datetime, row: Sequence[Any]) -> None:
        """`run.started` for a row read back as (job_id, trigger, attempt, scheduled_for)."""
        job_id, trigger, attempt, slot = tuple(row)
        run_started_event(
            self.conn,
            now,
            job_id,
            run_id,
            trigger=trigger,
            attempt=attempt,
            scheduled_for=from_db(slot),
        )

    def skip_queued_run(self, run_id: int, now: datetime, error: str) -> None:
        """A queued row ends `skipped` at `now`."""
        row = self.conn.execute(
            "UPDATE runs SET status = 'skipped', finished_at = ?, error = ? WHERE id = ? "
            "RETURNING job_id, trigger, scheduled_for",
            (to_db(now), error, run_id),
        ).fetchone()
        if row is not None:
            job_id, trigger, slot = tuple(row)
            data = {
                "trigger": trigger,
                "scheduled_for": iso_z(from_db(slot)),
                "error": short_error(error),
            }
            job_run_event(self.conn, EventType.RUN_SKIPPED, now, job_id, run_id, data)

    def start_reserved_retry(
        self, job_id: int, scheduled_for: datetime, attempt: int, now: datetime, owner: Owner
    ) -> int | None:
        """The queued retry `attempt` of the job's slot becomes `running` for `owner`; its
        id, or None if it is no longer queued (another process took it)."""
        row = self.conn.execute(
            "UPDATE runs SET status = 'running', started_at = ?, owner_pid = ?, owner_host = ?"
            " WHERE job_id = ? AND trigger = 'retry' AND scheduled_for = ? AND attempt = ?"
            " AND status = 'queued' RETURNING id, job_id, trigger, attempt, scheduled_for",
            (to_db(now), owner.pid, owner.host, job_id, to_db(scheduled_for), attempt),
        ).fetchone()
        if row is None:
            return None
        self._started_event(int(row[0]), now, tuple(row)[1:])
        return int(row[0])

    def next_wake(self, queues: Sequence[str] = ()) -> datetime | None:
        """The earliest next slot of an enabled job or due time of a queued run that nobody
        keeps and no running run of its job holds back (of jobs on `queues`; empty: all)."""
        if queues:
            return self._next_wake_on(queues)
        row = self.conn.execute(
            "SELECT min(t) FROM ("
            " SELECT min(next_run_at) AS t FROM jobs WHERE state = 'enabled'"
            " AND next_run_at IS NOT NULL"
            " UNION ALL SELECT min(q.due_at) FROM runs AS q WHERE q.status = 'queued'"
            " AND q.owner_pid IS NULL AND NOT EXISTS (SELECT 1 FROM runs AS r"
            " INDEXED BY runs_running WHERE r.job_id = q.job_id AND r.status = 'running'))"
        ).fetchone()
        return from_db(row[0]) if row and row[0] else None

    def _next_wake_on(self, queues: Sequence[str]) -> datetime | None:
        on_queues, params = queue_filter(queues)
        on_job_queues, job_params = queue_filter(queues, "j.queue")
        row = self.conn.execute(
            "SELECT min(t) FROM ("
            " SELECT min(next_run_at) AS t FROM jobs WHERE state = 'enabled'"
            f" AND next_run_at IS NOT NULL{on_queues}"
            " UNION ALL SELECT min(q.due_at) FROM runs AS q JOIN jobs AS j ON j.id = q.job_id"
            " WHERE q.status = 'queued' AND q.owner_pid IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM runs AS r INDEXED BY runs_running"
            " WHERE r.job_id = q.job_id AND r.status = 'running')"
            f"{on_job_queues})",
            (*params, *job_params),
        ).fetchone()
        return from_db(row[0]) if row and row[0] else None

    # ------------------------------------------------------------- what a claim reads

    def find_agent(self, name: str) -> Agent | None:
        """The agent named `name`, or None."""
        from jobctl.models import Agent

        row = self.conn.execute("SELECT * FROM agents WHERE name = ?", (name,)).fetchone()
        return Agent.from_row(row) if row else None

    def last_success_output(self, job_id: int) -> str | None:
        """The output of the job's latest succeeded run (None if it has none)."""
        row = self.conn.execute(
            "SELECT output FROM runs WHERE job_id = ? AND status = 'succeeded' "
            "ORDER BY id DESC LIMIT 1",
            (job_id,),
        ).fetchone()
        return row[0] if row else None

    def job_by_id(self, job_id: int) -> Job | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row is not None else None

    # ------------------------------------------------------------------------- chains

    def any_chains(self) -> bool:
        """Some job runs after another."""
        return bool(self.conn.execute("SELECT EXISTS (SELECT 1 FROM chains)").fetchone()[0])

    def jobs_chained_after(self, upstream_id: int, on_statuses: Iterable[str]) -> list[Job]:
        """Enabled jobs that run after job `upstream_id` ends with one of `on_statuses`."""
        wanted = tuple(on_statuses)
        rows = self.conn.execute(
            "SELECT jobs.* FROM chains JOIN jobs ON jobs.id = chains.job_id "
            f"WHERE chains.upstream_id = ? AND chains.on_status IN ({', '.join('?' * len(wanted))})"
            " AND jobs.state = ?",
            (upstream_id, *wanted, JobState.ENABLED),
        ).fetchall()
        return [_job(row) for row in rows]
