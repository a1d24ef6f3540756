"""Run rows: reading and writing them, and the job counters a finished run moves (the
rules for when are the engine's)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.models import EventType, JobState, Owner, Run, RunStatus, RunTrigger
from jobctl.store.sqlite.base import Connected
from jobctl.store.sqlite.events import (
    job_event,
    job_run_event,
    run_finished_event,
    run_started_event,
    short_error,
)
from jobctl.timeutil import from_db, iso_z, to_db

if TYPE_CHECKING:
    pass


def _time(text: str | None) -> datetime | None:
    return from_db(text) if text else None


def run_from_row(row: sqlite3.Row) -> Run:
    """A run row (all of the table's columns, and maybe the job's name as `job`) as a Run."""
    keys = row.keys()
    return Run(
        id=row["id"],
        job_id=row["job_id"],
        trigger=RunTrigger(row["trigger"]),
        status=RunStatus(row["status"]),
        attempt=row["attempt"],
        scheduled_for=from_db(row["scheduled_for"]),
        created_at=from_db(row["created_at"]),
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        due_at=_time(row["due_at"]),
        duration_ms=row["duration_ms"],
        http_status=row["http_status"],
        exit_code=row["exit_code"],
        error=row["error"],
        output=row["output"],
        snapshot=row["snapshot"],
        details=row["details"],
        owner_pid=row["owner_pid"],
        owner_host=row["owner_host"],
        caused_by=row["caused_by"],
        pgid=row["pgid"],
        pgid_started=row["pgid_started"],
        job=row["job"] if "job" in keys else None,
        adhoc=row["adhoc"],
        cancel_requested_at=_time(row["cancel_requested_at"]),
        rerun_of=row["rerun_of"],
    )


class RunOps(Connected):
    def get_run(self, run_id: int) -> Run | None:
        """The run with its job's name, or None."""
        row = self.conn.execute(
            "SELECT runs.*, jobs.name AS job FROM runs LEFT JOIN jobs ON jobs.id = runs.job_id "
            "WHERE runs.id = ?",
            (run_id,),
        ).fetchone()
        return run_from_row(row) if row is not None else None

    def running_run_ids(self, pid: int, host: str) -> list[int]:
        """The `running` runs owned by process `pid` on `host`."""
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM runs INDEXED BY runs_running "
                "WHERE status = 'running' AND owner_pid = ? AND owner_host = ?",
                (pid, host),
            )
        ]

    # ------------------------------------------------------------ writing (caller's transaction)

    def insert_run(
        self,
        *,
        job_id: int | None,
        trigger: RunTrigger,
        status: RunStatus,
        scheduled_for: datetime,
        now: datetime,
        attempt: int = 1,
        owner: Owner | None = None,
        due_at: datetime | None = None,
        error: str | None = None,
        details: Mapping[str, object] | None = None,
        caused_by: int | None = None,
        adhoc: str | None = None,
    ) -> int:
        """A new run row; a `running` one starts at `now`, a skipped or missed one ends then.
        An ad hoc run has no job (`job_id` None) and its action as JSON in `adhoc`."""
        started = to_db(now) if status == RunStatus.RUNNING else None
        finished = to_db(now) if status in (RunStatus.SKIPPED, RunStatus.MISSED) else None
        cursor = self.conn.execute(
            "INSERT INTO runs (job_id, trigger, status, attempt, scheduled_for, started_at, "
            "finished_at, error, details, owner_pid, owner_host, due_at, created_at, caused_by, "
            "adhoc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                adhoc,
            ),
        )
        assert cursor.lastrowid is not None
        self._inserted_run_event(
            cursor.lastrowid, job_id, trigger, status, attempt, scheduled_for, now, error, details
        )
        return cursor.lastrowid

    def _inserted_run_event(
        self,
        run_id: int,
        job_id: int | None,
        trigger: RunTrigger,
        status: RunStatus,
        attempt: int,
        scheduled_for: datetime,
        now: datetime,
        error: str | None,
        details: Mapping[str, object] | None,
    ) -> None:
        """The event a new row tells of: started, skipped or missed (none when queued)."""
        if status == RunStatus.RUNNING:
            run_started_event(
                self.conn,
                now,
                job_id,
                run_id,
                trigger=trigger.value,
                attempt=attempt,
                scheduled_for=scheduled_for,
            )
            return
        data: dict[str, object] = {"trigger": trigger.value}
        if status == RunStatus.SKIPPED:
            kind = EventType.RUN_SKIPPED
            data |= {"scheduled_for": iso_z(scheduled_for), "error": short_error(error)}
        elif status == RunStatus.MISSED:
            kind = EventType.RUN_MISSED
            more = details or {}
            data |= {
                "scheduled_for": iso_z(scheduled_for),
                "missed_count": more.get("missed_count"),
                "missed_until": more.get("missed_until"),
            }
        else:
            return
        job_run_event(self.conn, kind, now, job_id, run_id, data)

    def interrupt_run(self, run_id: int, now: datetime, error: str) -> bool:
        """A `running` row ends `interrupted` at `now`; False if it was no longer running
        (another process ended it first)."""
        row = self.conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?, "
            "duration_ms = CAST((julianday(?) - julianday(started_at)) * 86400000 AS INTEGER) "
            "WHERE id = ? AND status = 'running' RETURNING duration_ms",
            (to_db(now), error, to_db(now), run_id),
        ).fetchone()
        if row is None:
            return False
        run_finished_event(
            self.conn,
            now,
            run_id,
            status=RunStatus.INTERRUPTED,
            duration_ms=row[0],
            error=error,
        )
        return True

    def keep_partial_output(
        self, run_id: int, output: str | None, snapshot: Mapping[str, object] | None
    ) -> None:
        """What an interrupted run had produced (output so far, the request it sent)."""
        self.conn.execute(
            "UPDATE runs SET output = ?, snapshot = ? WHERE id = ?",
            (output or None, json.dumps(snapshot) if snapshot else None, run_id),
        )

    def record_process_group(self, run_id: int, pgid: int, pgid_started: int | None) -> None:
        """The run's command leads process group `pgid`, whose leader started at
        `pgid_started` (clock ticks since boot)."""
        self.conn.execute(
            "UPDATE runs SET pgid = ?, pgid_started = ? WHERE id = ? AND status = 'running'",
            (pgid, pgid_started, run_id),
        )

    def release_run(self, run_id: int) -> None:
        """A queued run kept by a process goes to whichever process claims it first."""
        self.conn.execute(
            "UPDATE runs SET owner_pid = NULL, owner_host = NULL WHERE id = ?", (run_id,)
        )

    def delete_queued_runs_of(self, owner: Owner) -> None:
        """The queued runs `owner` kept for itself go away (it stops, taking them along)."""
        self.conn.execute(
            "DELETE FROM runs WHERE status = 'queued' AND owner_pid = ? AND owner_host = ?",
            (owner.pid, owner.host),
        )

    # --------------------------------------------------------------- job counters of runs

    def count_missed(self, job_id: int, slots: int) -> None:
        self.conn.execute(
            "UPDATE jobs SET runs_missed = runs_missed + ? WHERE id = ?", (slots, job_id)
        )

    def pause_if_failing(self, job_id: int, max_failures: int, now: datetime) -> bool:
        """Pause the job if it is enabled and failed `max_failures` times in a row (or more);
        True if it did."""
        row = self.conn.execute(
            "UPDATE jobs SET state = ?, next_run_at = NULL, updated_at = ?, "
            "paused_reason = 'auto-paused after ' || consecutive_failures || ' failure' "
            "|| CASE consecutive_failures WHEN 1 THEN '' ELSE 's' END || ' in a row' "
            "WHERE id = ? AND state = ? AND consecutive_failures >= ? "
            "RETURNING name, paused_reason",
            (JobState.PAUSED, to_db(now), job_id, JobState.ENABLED, max_failures),
        ).fetchone()
        if row is None:
            return False
        job_event(
            self.conn,
            EventType.JOB_CHANGED,
            now,
            row[0],
            {"state": JobState.PAUSED.value, "reason": row[1]},
        )
        return True

    # ------------------------------------------------------------------- reading in flight

    def running_runs(self, *, host: str | None = None) -> list[Run]:
        """The `running` rows (of owners on `host`, if given), with their jobs' names."""
        where = "runs.status = 'running'"
        params: tuple[str, ...] = ()
        if host is not None:
            where += " AND runs.owner_host = ?"
            params = (host,)
        rows = self.conn.execute(
            # No INDEXED BY: doctor reads databases not migrated yet, which may lack
            # runs_running (the planner takes it anyway, the one index of running rows).
            "SELECT runs.*, jobs.name AS job FROM runs "
            f"LEFT JOIN jobs ON jobs.id = runs.job_id WHERE {where}",
            params,
        ).fetchall()
        return [run_from_row(row) for row in rows]

    def reserved_queued_runs(self, host: str) -> list[Run]:
        """Queued runs kept by a process on `host` for itself (`jobctl run`'s retries)."""
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE status = 'queued' AND owner_pid IS NOT NULL "
            "AND owner_host = ?",
            (host,),
        ).fetchall()
        return [run_from_row(row) for row in rows]

    def next_attempt_id(self, run_id: int) -> int | None:
        """The retry queued after run `run_id` (same job and slot, the next attempt), if any."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE job_id = (SELECT job_id FROM runs WHERE id = ?) "
            "AND trigger = 'retry' AND scheduled_for = (SELECT scheduled_for FROM runs "
            "WHERE id = ?) AND attempt = (SELECT attempt + 1 FROM runs WHERE id = ?)",
            (run_id, run_id, run_id),
        ).fetchone()
        return int(row[0]) if row is not None else None
