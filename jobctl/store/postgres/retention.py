"""Retention across the whole history: old runs of every job deleted in id order.

The PostgreSQL side of `jobctl.store.sqlite.retention`: the rules travel as arrays
(unnest), the walk follows the primary key from `after_id`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from psycopg.rows import tuple_row

from jobctl.models import RetentionRule
from jobctl.store.postgres.base import Connected
from jobctl.store.postgres.history import IN_FLIGHT
from jobctl.timeutil import to_db

ADHOC_KEY = 0  # the rules' key for the ad hoc runs (no job): job ids start at 1


class RetentionOps(Connected):
    @contextmanager
    def bulk_deletes(self) -> Iterator[None]:
        """Nothing to set: PostgreSQL's deletes leave dead rows to VACUUM, as any delete."""
        yield

    def run_id_span(self) -> tuple[int, int] | None:
        """The lowest and highest run id, None when there are no runs."""
        row = (
            self.conn.cursor(row_factory=tuple_row)
            .execute("SELECT min(id), max(id) FROM runs")
            .fetchone()
        )
        return (int(row[0]), int(row[1])) if row is not None and row[0] is not None else None

    def delete_runs_in_id_order(
        self, rules: Sequence[RetentionRule], after_id: int, limit: int
    ) -> tuple[int, int | None]:
        """In the caller's transaction: delete up to `limit` finished runs with an id above
        `after_id` that their job's rule lets go, lowest ids first; (how many went, the
        highest id deleted, None when none went)."""
        keys = [rule.job_id if rule.job_id is not None else ADHOC_KEY for rule in rules]
        below = [rule.below_id for rule in rules]
        before = [
            to_db(rule.created_before) if rule.created_before is not None else None
            for rule in rules
        ]
        rows = self.conn.cursor(row_factory=tuple_row).execute(
            "WITH rule AS (SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) "
            "AS r(job_key, below_id, created_before)) "
            "SELECT runs.id FROM runs JOIN rule ON rule.job_key = coalesce(runs.job_id, %s) "
            "WHERE runs.id > %s AND runs.status NOT IN (%s, %s, %s) "
            "AND (runs.id < rule.below_id "
            'OR runs.created_at COLLATE "C" < rule.created_before COLLATE "C") '
            "ORDER BY runs.id LIMIT %s",
            (keys, below, before, ADHOC_KEY, after_id, *IN_FLIGHT, limit),
        )
        ids = [int(row[0]) for row in rows]
        if not ids:
            return 0, None
        self.conn.execute("DELETE FROM runs WHERE id = ANY(%s)", (ids,))
        return len(ids), ids[-1]
