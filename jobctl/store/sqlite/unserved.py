"""The missed row of a queue that no live daemon fires: found while the spell lasts and
extended by each sweep, so that one row stands for the whole gap."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from jobctl.models import EventType, OpenMiss, RunStatus
from jobctl.store.sqlite.base import Connected
from jobctl.store.sqlite.events import job_run_event
from jobctl.timeutil import db_to_iso, to_db


class UnservedOps(Connected):
    def open_miss(self, job_id: int, last_slot: datetime | None) -> OpenMiss | None:
        """In the caller's transaction: the job's newest run row if it is an unserved
        queue's `missed` row ending at `last_slot` (the job's last slot): nothing ran
        since. Only the newest row is read (an index step, however long the history)."""
        if last_slot is None:
            return None
        row = self.conn.execute(
            "SELECT id, status, scheduled_for, details FROM runs WHERE job_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (job_id,),
        ).fetchone()
        if row is None or row["status"] != RunStatus.MISSED:
            return None
        return OpenMiss.of_row(row, last_slot)

    def extend_miss(
        self, run_id: int, details: Mapping[str, object], error: str, now: datetime
    ) -> None:
        """In the caller's transaction: the open missed row `run_id` stands for more slots
        (`details` merged into its own, `error` its new text, ended at `now`); a `run.missed`
        event tells of it again, with its new count."""
        row = self.conn.execute(
            "SELECT job_id, trigger, scheduled_for, details FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return
        merged = {**json.loads(row["details"] or "{}"), **details}
        self.conn.execute(
            "UPDATE runs SET details = ?, error = ?, finished_at = ? WHERE id = ?",
            (json.dumps(merged), error, to_db(now), run_id),
        )
        told = {
            "trigger": row["trigger"],
            "scheduled_for": db_to_iso(row["scheduled_for"]),
            "missed_count": merged.get("missed_count"),
            "missed_until": merged.get("missed_until"),
        }
        job_run_event(self.conn, EventType.RUN_MISSED, now, row["job_id"], run_id, told)
