"""Retention across the whole history: old runs of every job deleted in id order.

Jobs take turns, so one job's rows are spread over the whole table: deleting job by job
rewrites every page once per job with a row in it. Walking the ids in order, with every
job's rule at hand, rewrites each page about once (bench/history.py measures both).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from jobctl.models import RetentionRule
from jobctl.store.sqlite.base import Connected
from jobctl.store.sqlite.history import IN_FLIGHT
from jobctl.timeutil import to_db

ADHOC_KEY = 0  # the rules' key for the ad hoc runs (no job): job ids start at 1
# The walk's connection settings, only while it runs (measured on 5M runs, bench/prune.py):
WALK_SETTINGS = {
    # It deletes from every job's part of the (job_id, ...) indexes at once: their pages in
    # use at a time outgrow SQLite's default 2 MB cache.
    "cache_size": -128 * 1024,
    # A checkpoint per ~40 MB of WAL, not per 4 MB: an index page deleted from in batch
    # after batch is copied back to the database once, not once per batch (commits 4x less).
    "wal_autocheckpoint": 10_000,
    # SQLite as Debian builds it (secure_delete on) zeroes and writes every page a delete
    # frees: most of the table's pages, in a big prune. FAST still clears deleted rows in
    # pages written anyway; nothing secret is in them (secrets stay ${NAME}, outputs redacted).
    "secure_delete": "FAST",
}


class RetentionOps(Connected):
    @contextmanager
    def bulk_deletes(self) -> Iterator[None]:
        """This connection set for a long walk of deletes (WALK_SETTINGS), then set back.
        Each setting is the connection's own: other connections (a daemon) are unaffected."""
        before = {name: self.conn.execute(f"PRAGMA {name}").fetchone()[0] for name in WALK_SETTINGS}
        for name, value in WALK_SETTINGS.items():
            self.conn.execute(f"PRAGMA {name} = {value}")
        try:
            yield
        finally:
            for name, value in before.items():
                self.conn.execute(f"PRAGMA {name} = {value}")

    def run_id_span(self) -> tuple[int, int] | None:
        """The lowest and highest run id, None when there are no runs."""
        low, high = self.conn.execute("SELECT min(id), max(id) FROM runs").fetchone()
        return (int(low), int(high)) if low is not None else None

    def delete_runs_in_id_order(
        self, rules: Sequence[RetentionRule], after_id: int, limit: int
    ) -> tuple[int, int | None]:
        """In the caller's transaction: delete up to `limit` finished runs with an id above
        `after_id` that their job's rule lets go, lowest ids first; (how many went, the
        highest id deleted, None when none went)."""
        self.conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS retention_rules ("
            "job_key INTEGER PRIMARY KEY, below_id INTEGER, created_before TEXT)"
        )
        self.conn.execute("DELETE FROM temp.retention_rules")
        self.conn.executemany(
            "INSERT INTO temp.retention_rules VALUES (?, ?, ?)",
            [
                (
                    rule.job_id if rule.job_id is not None else ADHOC_KEY,
                    rule.below_id,
                    to_db(rule.created_before) if rule.created_before is not None else None,
                )
                for rule in rules
            ],
        )
        # CROSS JOIN keeps runs the outer loop: a walk of the key from after_id, each row's
        # rule looked up by its key, so no sort and no more rows read than needed.
        ids = [
            row[0]
            for row in self.conn.execute(
                "SELECT runs.id FROM runs CROSS JOIN temp.retention_rules AS rule "
                "ON rule.job_key = coalesce(runs.job_id, ?) "
                "WHERE runs.id > ? AND runs.status NOT IN (?, ?, ?) "
                "AND (runs.id < rule.below_id OR runs.created_at < rule.created_before) "
                "ORDER BY runs.id LIMIT ?",
                (ADHOC_KEY, after_id, *IN_FLIGHT, limit),
            )
        ]
        if not ids:
            return 0, None
        self.conn.execute(f"DELETE FROM runs WHERE id IN ({', '.join('?' * len(ids))})", ids)
        return len(ids), ids[-1]
