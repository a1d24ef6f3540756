"""Webhooks: each job's secret and the deliveries seen (the replay window is the caller's)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jobctl.store.postgres.base import Connected
from jobctl.timeutil import to_db


class HookOps(Connected):
    def webhook_secret(self, job_id: int) -> str | None:
        """The job's webhook secret, or None (no webhook, or no such job)."""
        row = self.conn.execute("SELECT hook_secret FROM jobs WHERE id = %s", (job_id,)).fetchone()
        return row[0] if row and row[0] else None

    def webhook_secret_by_name(self, name: str) -> str | None:
        """The named job's webhook secret, or None (no webhook, or no such job)."""
        row = self.conn.execute("SELECT hook_secret FROM jobs WHERE name = %s", (name,)).fetchone()
        return row[0] if row and row[0] else None

    def set_webhook_secret(self, job_id: int, secret: str) -> None:
        """In the caller's transaction: the job's webhook secret becomes `secret`."""
        self.conn.execute("UPDATE jobs SET hook_secret = %s WHERE id = %s", (secret, job_id))

    def clear_webhook_secret(self, job_id: int) -> bool:
        """In the caller's transaction: the job has no webhook; False if it had none."""
        cursor = self.conn.execute(
            "UPDATE jobs SET hook_secret = NULL WHERE id = %s AND hook_secret IS NOT NULL",
            (job_id,),
        )
        return cursor.rowcount > 0

    def forget_deliveries(self, seen_before: datetime) -> None:
        """In the caller's transaction: drop the deliveries seen before `seen_before`."""
        self.conn.execute("DELETE FROM hook_deliveries WHERE seen_at < %s", (to_db(seen_before),))

    def delivery_run(self, job_id: int, keys: Sequence[str]) -> int | None:
        """The run started by the earliest remembered delivery with one of `keys`, or None."""
        if not keys:
            return None
        row = self.conn.execute(
            "SELECT run_id FROM hook_deliveries WHERE job_id = %s AND key = ANY(%s) "
            "ORDER BY seen_at LIMIT 1",
            (job_id, list(keys)),
        ).fetchone()
        return int(row[0]) if row else None

    def remember_delivery(
        self, job_id: int, keys: Sequence[str], run_id: int, now: datetime
    ) -> None:
        """In the caller's transaction: each of `keys` started run `run_id` at `now`."""
        self.conn.cursor().executemany(
            "INSERT INTO hook_deliveries (job_id, key, run_id, seen_at) VALUES (%s, %s, %s, %s)",
            [(job_id, key, run_id, to_db(now)) for key in keys],
        )
