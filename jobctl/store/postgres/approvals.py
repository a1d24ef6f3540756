"""Runs waiting at a team's approval point: stopped there, decided, taken up again (what a
decision means is `jobctl.approvals`' and `jobctl.engine.approvals`')."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.models import EventType, Owner
from jobctl.store.postgres.base import Connected
from jobctl.store.postgres.events import run_event
from jobctl.timeutil import to_db

if TYPE_CHECKING:
    from jobctl.actions import Outcome


class ApprovalOps(Connected):
    def waiting_run_ids(self) -> list[int]:
        """The runs waiting at an approval point, oldest first (the partial index's)."""
        rows = self.conn.execute("SELECT id FROM runs WHERE status = 'waiting' ORDER BY id")
        return [int(row[0]) for row in rows]

    def last_output_seq(self, run_id: int) -> int:
        """The number of the run's last stored piece of output (0: none)."""
        row = self.conn.execute(
            "SELECT max(seq) FROM run_output WHERE run_id = %s", (run_id,)
        ).fetchone()
        return int(row[0] or 0) if row is not None else 0

    def wait_run(self, run_id: int, outcome: Outcome, data: dict[str, object]) -> bool:
        """A `running` row becomes `waiting`, owned by nobody, with what the team produced
        so far; `run.waiting` carries `data`. False if it was no longer running."""
        cursor = self.conn.execute(
            "UPDATE runs SET status = 'waiting', started_at = %s, output = %s, snapshot = %s, "
            "details = %s, owner_pid = NULL, owner_host = NULL, pgid = NULL "
            "WHERE id = %s AND status = 'running'",
            (
                to_db(outcome.started_at),
                outcome.output,
                json.dumps(outcome.snapshot) if outcome.snapshot is not None else None,
                json.dumps(outcome.details),
                run_id,
            ),
        )
        if cursor.rowcount != 1:
            return False
        run_event(self.conn, EventType.RUN_WAITING, outcome.finished_at, run_id, data)
        return True

    def decide_waiting(self, run_id: int, expected: str | None, details: str) -> bool:
        """Write a waiting run's details (its decision) if they are still `expected`."""
        cursor = self.conn.execute(
            "UPDATE runs SET details = %s WHERE id = %s AND status = 'waiting' "
            "AND details IS NOT DISTINCT FROM %s",
            (details, run_id, expected),
        )
        return cursor.rowcount == 1

    def take_waiting(self, run_id: int, owner: Owner, now: datetime) -> bool:
        """A decided `waiting` row becomes `running` again, owned by `owner`."""
        cursor = self.conn.execute(
            "UPDATE runs SET status = 'running', owner_pid = %s, owner_host = %s "
            "WHERE id = %s AND status = 'waiting'",
            (owner.pid, owner.host, run_id),
        )
        if cursor.rowcount != 1:
            return False
        run_event(self.conn, EventType.RUN_STARTED, now, run_id, {"resumed": True})
        return True
