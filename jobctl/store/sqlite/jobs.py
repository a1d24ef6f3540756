"""Jobs as the daemon reads them between fires: dead-man alerts and the status line."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.models import JobState
from jobctl.store.sqlite.base import Connected
from jobctl.timeutil import to_db

if TYPE_CHECKING:
    from jobctl.jobs import Job


class JobOps(Connected):
    def count_enabled_jobs(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM jobs WHERE state = ?", (JobState.ENABLED,)
        ).fetchone()
        return int(row[0])

    def jobs_due_for_alert(self) -> list[Job]:
        """Enabled jobs with an `alert_if_no_success` window not alerted since their last
        success (whether the window has passed is the caller's rule)."""
        # jobs.py still opens the store itself; imported here until it no longer does.
        from jobctl.jobs import Job

        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE state = ? AND alerted_at IS NULL "
            "AND json_extract(policies, '$.alert_if_no_success') IS NOT NULL",
            (JobState.ENABLED,),
        ).fetchall()
        return [Job.from_row(row) for row in rows]

    def mark_alerted(self, job_id: int, now: datetime) -> None:
        """Own transaction: the job's dead-man alert went out at `now`."""
        with self.write():
            self.conn.execute("UPDATE jobs SET alerted_at = ? WHERE id = ?", (to_db(now), job_id))
