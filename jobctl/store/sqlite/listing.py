"""`jobctl list`'s table read straight from the jobs' columns: no models, and not the
store's operations (importing them and building 1,000 Jobs and their stats cost ~55 ms of
the ~120 ms that `list` took over `jobctl --version` on 5 million runs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from jobctl.store.sqlite.store import SqliteStore

# Each job's newest runs' statuses, packed newest first by a subquery per job on the
# (job_id, id, status, ...) index: 2.6 ms for 1,000 jobs on 5 million runs, against 7-16 ms
# for a statement per job. SQLite does not flatten a subquery with a LIMIT into an
# aggregate, so its rows reach group_concat in its ORDER BY's order (the test checks it).
_LIST_SQL = (
    "SELECT name, state, paused_reason, trigger, schedule, action, spec, next_run_at, "
    "last_run_at, last_status, runs_total, runs_succeeded, "
    "(SELECT group_concat(status) FROM (SELECT status FROM runs WHERE job_id = jobs.id "
    "ORDER BY id DESC LIMIT ?)) FROM jobs ORDER BY name"
)


class ListRow(NamedTuple):
    """What the list table reads of a job, as stored."""

    name: str
    state: str
    paused_reason: str | None
    trigger: str
    schedule: str | None
    action: str
    spec: str  # JSON text
    next_run_at: str | None
    last_run_at: str | None
    last_status: str | None
    runs_total: int
    runs_succeeded: int
    recent: list[str]  # the newest `recent` runs' statuses, oldest first


class JobList:
    """An SQLite database opened for `jobctl list` (see read_listing in the CLI)."""

    def __init__(self, conn: sqlite3.Connection, *, writable: bool) -> None:
        self.conn = conn
        self.writable = writable

    def rows(self, recent: int) -> list[ListRow]:
        """Every job by name, with the statuses of its newest `recent` runs."""
        return [
            ListRow._make((*row[:12], row[12].split(",")[::-1] if row[12] else []))
            for row in self.conn.execute(_LIST_SQL, (recent,))
        ]

    def has_running_runs(self) -> bool:
        """Whether some run is `running` (its owner may be gone; it is in flight)."""
        # owner_pid, not 1: runs_job_recent covers status, and a statement it covers is
        # answered by walking all of it (5 million runs: 220 ms) rather than runs_running,
        # the partial index of running rows (no INDEXED BY: a read-only database of an
        # older schema may lack it)
        row = self.conn.execute("SELECT owner_pid FROM runs WHERE status = 'running' LIMIT 1")
        return row.fetchone() is not None

    def store(self) -> SqliteStore:
        """The store's operations over the same connection."""
        from jobctl.store.sqlite.store import SqliteStore

        return SqliteStore(self.conn, writable=self.writable)

    def close(self) -> None:
        self.conn.close()


def open_job_list(path: Path) -> JobList:
    """An existing database as connect_for_reading opens it (migrated when it may be
    written, else read-only)."""
    from jobctl.store.sqlite.connection import connect_for_reading

    conn, writable = connect_for_reading(path)
    return JobList(conn, writable=writable)
