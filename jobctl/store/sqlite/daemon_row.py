"""The daemon's heartbeat row (one per database) and the daemon's own small reads."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from jobctl.models import DaemonRow, EventType, JobState
from jobctl.store.sqlite.base import Connected
from jobctl.timeutil import from_db, to_db


def _daemon_row(row: sqlite3.Row) -> DaemonRow:
    return DaemonRow(
        pid=row["pid"],
        host=row["host"],
        started_at=from_db(row["started_at"]),
        last_tick_at=from_db(row["last_tick_at"]),
        listen=row["listen"],
        stopped_at=from_db(row["stopped_at"]) if row["stopped_at"] else None,
        log_file=row["log_file"] if "log_file" in row.keys() else None,  # schema 3 added it
    )


def peek_daemon_row(path: Path, *, timeout: float = 1.0) -> DaemonRow | None:
    """The heartbeat row of the database at `path`, read without opening it as a store
    (nothing is created or migrated): None when the file, the row or the table is missing,
    or the file cannot be read."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=timeout)
        try:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM daemon WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return _daemon_row(row) if row is not None else None


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
                "INSERT OR REPLACE INTO daemon (id, pid, host, started_at, last_tick_at, "
                "listen, stopped_at, log_file) VALUES (1, ?, ?, ?, ?, ?, NULL, ?)",
                (pid, host, to_db(started_at), to_db(now), listen, log_file),
            )
            self._daemon_event(EventType.DAEMON_STARTED, now)

    def heartbeat(self, now: datetime) -> None:
        """Own transaction: the daemon is alive at `now`."""
        with self.write():
            self.conn.execute("UPDATE daemon SET last_tick_at = ? WHERE id = 1", (to_db(now),))

    def heartbeat_stop(self, now: datetime) -> None:
        """In the caller's transaction: the daemon stopped at `now`."""
        self.conn.execute(
            "UPDATE daemon SET stopped_at = ?, last_tick_at = ? WHERE id = 1",
            (to_db(now), to_db(now)),
        )
        self._daemon_event(EventType.DAEMON_STOPPED, now)

    def _daemon_event(self, kind: EventType, now: datetime) -> None:
        """`daemon.started` or `daemon.stopped`, with the heartbeat row's pid, host and address."""
        self.conn.execute(
            "INSERT INTO events (at, type, data) SELECT ?, ?, "
            "json_object('pid', pid, 'host', host, 'listen', listen) FROM daemon WHERE id = 1",
            (to_db(now), kind.value),
        )

    def heartbeat_stop_if_running(self) -> None:
        """In the caller's transaction: a heartbeat left running (a restored copy) stops at
        its last tick."""
        self.conn.execute("UPDATE daemon SET stopped_at = last_tick_at WHERE stopped_at IS NULL")

    def data_version(self) -> int:
        """Changes when another connection commits: the daemon's cue to look again."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def record_notifications(self, run_id: int, results: Sequence[object]) -> None:
        """Own transaction: what the notifications sent after run `run_id` answered."""
        with self.write():
            self.conn.execute(
                "UPDATE runs SET details = json_set(coalesce(details, '{}'), "
                "'$.notifications', json(?)) WHERE id = ?",
                (json.dumps(results), run_id),
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
