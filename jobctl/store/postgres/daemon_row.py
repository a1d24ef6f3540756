"""The daemon's heartbeat row (one per database) and the daemon's own small reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from jobctl.models import DaemonRow, EventType, JobState
from jobctl.store.postgres.base import Connected
from jobctl.store.postgres.connection import Row
from jobctl.store.postgres.events import lock_event_order
from jobctl.timeutil import from_db, to_db


def _daemon_row(row: Row) -> DaemonRow:
    return DaemonRow(
        pid=row["pid"],
        host=row["host"],
        started_at=from_db(row["started_at"]),
        last_tick_at=from_db(row["last_tick_at"]),
        listen=row["listen"],
        stopped_at=from_db(row["stopped_at"]) if row["stopped_at"] else None,
        log_file=row["log_file"],
    )


class DaemonRowOps(Connected):
    def daemon_row(self) -> DaemonRow | None:
        """The last daemon's heartbeat row, or None if no daemon ever ran here."""
        row = self.conn.execute("SELECT * FROM daemon WHERE id = 1").fetchone()
        return _daemon_row(row) if row is not None else None

    def heartbeat_start(
        self,
        *,
        pid: int,
        host: str,
        started_at: datetime,
        now: datetime,
        listen: str | None,
        log_file: str | None,
    ) -> None:
        """Own transaction: this daemon's row replaces the last one's."""
        with self.write():
            self.conn.execute(
                "INSERT INTO daemon (id, pid, host, started_at, last_tick_at, listen, stopped_at, "
                "log_file) VALUES (1, %s, %s, %s, %s, %s, NULL, %s) ON CONFLICT (id) DO UPDATE "
                "SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at, "
                "last_tick_at = excluded.last_tick_at, listen = excluded.listen, "
                "stopped_at = NULL, log_file = excluded.log_file",
                (pid, host, to_db(started_at), to_db(now), listen, log_file),
            )
            self._daemon_event(EventType.DAEMON_STARTED, now)

    def heartbeat(self, now: datetime) -> None:
        """Own transaction: the daemon is alive at `now`."""
        with self.write():
            self.conn.execute("UPDATE daemon SET last_tick_at = %s WHERE id = 1", (to_db(now),))

    def heartbeat_stop(self, now: datetime) -> None:
        """In the caller's transaction: the daemon stopped at `now`."""
        self.conn.execute(
            "UPDATE daemon SET stopped_at = %s, last_tick_at = %s WHERE id = 1",
            (to_db(now), to_db(now)),
        )
        self._daemon_event(EventType.DAEMON_STOPPED, now)

    def _daemon_event(self, kind: EventType, now: datetime) -> None:
        """`daemon.started` or `daemon.stopped`, with the heartbeat row's pid, host and address."""
        lock_event_order(self.conn)
        self.conn.execute(
            "INSERT INTO events (at, type, data) SELECT %s, %s, "
            "json_build_object('host', host, 'listen', listen, 'pid', pid)::text "
            "FROM daemon WHERE id = 1",
            (to_db(now), kind.value),
        )

    def heartbeat_stop_if_running(self) -> None:
        """In the caller's transaction: a heartbeat left running (a restored copy) stops at
        its last tick."""
        self.conn.execute("UPDATE daemon SET stopped_at = last_tick_at WHERE stopped_at IS NULL")

    def data_version(self) -> int:
        """Changes when a session commits a write (the server's WAL position moves): the
        daemon's cue to look again. Writes of this connection, and of other databases on
        the server, move it too: a false alarm costs one more look, never a missed one."""
        return int(self.value("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"))

    def record_notifications(self, run_id: int, results: Sequence[object]) -> None:
        """Own transaction: what the notifications sent after run `run_id` answered."""
        with self.write():
            # Read and written back here, not with jsonb (which would reorder the keys).
            row = self.conn.execute(
                "SELECT details FROM runs WHERE id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if row is None:
                return
            details = json.loads(row[0]) if row[0] else {}
            details["notifications"] = list(results)
            self.conn.execute(
                "UPDATE runs SET details = %s WHERE id = %s", (json.dumps(details), run_id)
            )

    def job_state_counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state, zero where none)."""
        counts = dict.fromkeys(JobState, 0)
        for state, count in self.conn.execute("SELECT state, count(*) FROM jobs GROUP BY state"):
            counts[JobState(state)] = int(count)
        return counts

    def last_successes(self) -> list[tuple[str, datetime]]:
        """(job name, when it last succeeded) for the jobs that ever did, by name."""
        return [
            (name, from_db(when))
            for name, when in self.conn.execute(
                "SELECT name, last_success_at FROM jobs WHERE last_success_at IS NOT NULL "
                "ORDER BY name"
            )
        ]
