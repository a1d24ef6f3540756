"""Run rows: reading and writing them (the rules for when are the engine's)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from jobctl.models import Run, RunStatus, RunTrigger
from jobctl.store.sqlite.base import Connected
from jobctl.timeutil import from_db


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
    )


class RunOps(Connected):
    def get_run(self, run_id: int) -> Run | None:
        """The run with its job's name, or None."""
        row = self.conn.execute(
            "SELECT runs.*, jobs.name AS job FROM runs JOIN jobs ON jobs.id = runs.job_id "
            "WHERE runs.id = ?",
            (run_id,),
        ).fetchone()
        return run_from_row(row) if row is not None else None

    def running_run_ids(self, pid: int, host: str) -> list[int]:
        """The `running` runs owned by process `pid` on `host`."""
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM runs WHERE status = ? AND owner_pid = ? AND owner_host = ?",
                (RunStatus.RUNNING, pid, host),
            )
        ]
