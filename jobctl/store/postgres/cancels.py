"""Cancel requests and reruns: the run rows `runs cancel` and `runs rerun` write, and the
requests the process that owns a run looks for."""

from __future__ import annotations

from datetime import datetime

from jobctl.models import Owner, Run
from jobctl.store.postgres.base import Connected
from jobctl.store.postgres.runs import run_from_row
from jobctl.timeutil import to_db


class CancelOps(Connected):
    def request_cancel(self, run_id: int, now: datetime) -> bool:
        """Ask the owner of a `running` run to stop it (the first request's time is kept);
        False if the run is not running."""
        cursor = self.conn.execute(
            "UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, %s) "
            "WHERE id = %s AND status = 'running'",
            (to_db(now), run_id),
        )
        return cursor.rowcount == 1

    def cancel_queued_run(self, run_id: int, now: datetime, error: str) -> bool:
        """A `queued` run ends `cancelled` at `now` without starting; False if it was no
        longer queued."""
        cursor = self.conn.execute(
            "UPDATE runs SET status = 'cancelled', finished_at = %s, error = %s, "
            "cancel_requested_at = %s WHERE id = %s AND status = 'queued'",
            (to_db(now), error, to_db(now), run_id),
        )
        return cursor.rowcount == 1

    def count_cancelled_before_start(self, job_id: int) -> None:
        """A cancelled run counts as executed (runs_total), never as failed; one that never
        started leaves the job's last-run fields as they are."""
        self.conn.execute("UPDATE jobs SET runs_total = runs_total + 1 WHERE id = %s", (job_id,))

    def cancel_requests(self, owner: Owner) -> list[int]:
        """The `running` runs of `owner` that somebody asked to cancel (uses the partial
        index `runs_cancel`: cheap enough for every step of the daemon's loop)."""
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM runs WHERE cancel_requested_at IS NOT NULL "
                "AND status = 'running' AND owner_pid = %s AND owner_host = %s",
                (owner.pid, owner.host),
            )
        ]

    def runs_in_flight_of(self, job_id: int) -> list[Run]:
        """The job's queued and running runs, oldest first, with its name."""
        rows = self.conn.execute(
            "SELECT runs.*, jobs.name AS job FROM runs JOIN jobs ON jobs.id = runs.job_id "
            "WHERE runs.job_id = %s AND runs.status IN ('queued', 'running') ORDER BY runs.id",
            (job_id,),
        ).fetchall()
        return [run_from_row(row) for row in rows]

    def mark_rerun_of(self, run_id: int, original: int) -> None:
        """Run `run_id` repeats run `original` (`runs rerun`)."""
        self.conn.execute("UPDATE runs SET rerun_of = %s WHERE id = %s", (original, run_id))
