"""The fleet's rows: one per daemon start, with its queues and lease (SQLite has one daemon
at a time, but keeps the same rows so that `status` reads both stores alike)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from jobctl.models import DaemonEntry, JobState
from jobctl.store.sqlite.base import Connected
from jobctl.timeutil import to_db


class FleetOps(Connected):
    def daemon_join(self, entry: DaemonEntry, *, alone: bool = False) -> None:
        """Own transaction: the daemon `entry` starts, its lease running; `alone` (the one
        daemon SQLite allows) closes the rows earlier daemons left open at their last beat."""
        with self.write():
            if alone:
                self.conn.execute(
                    "UPDATE daemons SET stopped_at = last_beat_at, lease_until = last_beat_at "
                    "WHERE stopped_at IS NULL"
                )
            self.conn.execute(
                "INSERT INTO daemons (id, host, pid, queues, started_at, last_beat_at, "
                "lease_until, listen, log_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    entry.host,
                    entry.pid,
                    json.dumps(list(entry.queues)),
                    to_db(entry.started_at),
                    to_db(entry.last_beat_at),
                    to_db(entry.lease_until),
                    entry.listen,
                    entry.log_file,
                ),
            )

    def daemon_beat(
        self,
        daemon_id: str,
        now: datetime,
        lease_until: datetime,
        *,
        in_flight: int,
        fired_last_minute: int,
    ) -> bool:
        """Own transaction: the lease renewed until `lease_until`; False if the daemon was
        declared dead meanwhile (its lease had run out and another daemon took over)."""
        with self.write():
            cursor = self.conn.execute(
                "UPDATE daemons SET last_beat_at = ?, lease_until = ?, in_flight = ?, "
                "fired_last_minute = ? WHERE id = ? AND stopped_at IS NULL",
                (to_db(now), to_db(lease_until), in_flight, fired_last_minute, daemon_id),
            )
            return cursor.rowcount == 1

    def renew_lease(self, daemon_id: str, now: datetime, lease_until: datetime) -> bool:
        """Own statement: the lease alone renewed (the lease keeper's, beside the loop);
        False if the daemon was declared dead meanwhile."""
        cursor = self.conn.execute(
            "UPDATE daemons SET last_beat_at = ?, lease_until = ? "
            "WHERE id = ? AND stopped_at IS NULL",
            (to_db(now), to_db(lease_until), daemon_id),
        )
        return cursor.rowcount == 1

    def daemon_leave(self, daemon_id: str, now: datetime) -> None:
        """In the caller's transaction: a clean stop, its lease released at once; the
        heartbeat row goes to a daemon still running, if any."""
        self.conn.execute(
            "UPDATE daemons SET stopped_at = ?, lease_until = ? WHERE id = ?",
            (to_db(now), to_db(now), daemon_id),
        )
        self._hand_heartbeat_row(now)

    def expire_daemons(self, now: datetime) -> list[DaemonEntry]:
        """In the caller's transaction: daemons whose lease ran out before `now` are marked
        stopped (at their lease's end) and returned; a daemon doing the same at the same
        moment gets none of them (the update is conditional)."""
        rows = self.conn.execute(
            "UPDATE daemons SET stopped_at = lease_until "
            "WHERE stopped_at IS NULL AND lease_until < ? RETURNING *",
            (to_db(now),),
        ).fetchall()
        if rows:
            self._hand_heartbeat_row(now)
        return [DaemonEntry.from_row(row) for row in rows]

    def _hand_heartbeat_row(self, now: datetime) -> None:
        """The single heartbeat row names a live daemon while one is left."""
        row = self.conn.execute(
            "SELECT * FROM daemons WHERE stopped_at IS NULL AND lease_until >= ? "
            "ORDER BY started_at LIMIT 1",
            (to_db(now),),
        ).fetchone()
        if row is None:
            return
        self.conn.execute(
            "UPDATE daemon SET pid = ?, host = ?, started_at = ?, last_tick_at = ?, listen = ?, "
            "log_file = ?, stopped_at = NULL WHERE id = 1",
            (
                row["pid"],
                row["host"],
                row["started_at"],
                row["last_beat_at"],
                row["listen"],
                row["log_file"],
            ),
        )

    def live_daemons(self, now: datetime) -> list[DaemonEntry]:
        """The daemons whose lease holds at `now`, oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM daemons WHERE stopped_at IS NULL AND lease_until >= ? "
            "ORDER BY started_at, id",
            (to_db(now),),
        ).fetchall()
        return [DaemonEntry.from_row(row) for row in rows]

    def enabled_queue_counts(self) -> dict[str, int]:
        """Queue -> how many enabled jobs are on it."""
        return {
            queue: int(count)
            for queue, count in self.conn.execute(
                "SELECT queue, count(*) FROM jobs WHERE state = ? GROUP BY queue ORDER BY queue",
                (JobState.ENABLED,),
            )
        }

    def prune_daemons(self, before: datetime) -> None:
        """Own transaction: rows of daemons that stopped before `before` go."""
        with self.write():
            self.conn.execute(
                "DELETE FROM daemons WHERE stopped_at IS NOT NULL AND stopped_at < ?",
                (to_db(before),),
            )


def queue_filter(queues: Sequence[str], column: str = "queue") -> tuple[str, list[str]]:
    """SQL ' AND <column> IN (...)' and its parameters; nothing when every queue is served."""
    if not queues:
        return "", []
    return f" AND {column} IN ({', '.join('?' * len(queues))})", list(queues)
