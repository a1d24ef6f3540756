"""What TAB completion reads: names and run ids by prefix, each one index range.

Every TAB runs the CLI, so these stay cheap on a big database: a prefix becomes a range
the UNIQUE name index or the key answers, never a scan.
"""

from __future__ import annotations

from datetime import datetime

from jobctl.models import RunStatus
from jobctl.store.postgres.base import Connected
from jobctl.timeutil import from_db


def prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds for `name >= %s AND name < %s`: a prefix search the UNIQUE index answers.

    Names are ASCII below DEL, so every name starting with the prefix sorts before prefix+DEL.
    """
    return prefix, prefix + "\x7f"


def id_ranges(prefix: str, highest: int) -> list[tuple[int, int]]:
    """Integer ranges of the ids up to `highest` whose decimal text starts with `prefix`,
    largest first: prefix 4 with highest 4500 gives 4000-4500, 400-499, 40-49, 4-4."""
    if not prefix:
        return [(1, highest)] if highest >= 1 else []
    start = int(prefix)
    ranges = []
    scale = 1
    while start * scale <= highest:
        ranges.append((start * scale, min((start + 1) * scale - 1, highest)))
        scale *= 10
    return ranges[::-1]


class CompletionOps(Connected):
    def job_names_starting(self, prefix: str, limit: int) -> list[tuple[str, str | None]]:
        """(name, description) of the first `limit` jobs whose name starts with `prefix`."""
        rows = self.conn.execute(
            "SELECT name, description FROM jobs WHERE name >= %s AND name < %s ORDER BY name LIMIT %s",
            (*prefix_range(prefix), limit),
        )
        return [(name, description) for name, description in rows]

    def agent_names_starting(self, prefix: str, limit: int) -> list[tuple[str, str]]:
        """(name, kind) of the first `limit` agents whose name starts with `prefix`."""
        rows = self.conn.execute(
            "SELECT name, kind FROM agents WHERE name >= %s AND name < %s ORDER BY name LIMIT %s",
            (*prefix_range(prefix), limit),
        )
        return [(name, kind) for name, kind in rows]

    def newest_runs_with_id_prefix(
        self, prefix: str, limit: int
    ) -> list[tuple[int, str | None, RunStatus, datetime]]:
        """(id, job name (None for an ad hoc run), status, slot) of the newest `limit` runs whose id, as decimal
        text, starts with `prefix` (all digits, no leading zero)."""
        highest = self.value("SELECT max(id) FROM runs")
        rows: list[tuple[int, str | None, RunStatus, datetime]] = []
        # One primary-key range per length of id, newest first: no scan of a long history.
        for low, high in id_ranges(prefix, int(highest or 0)):
            rows += [
                (run_id, job, RunStatus(status), from_db(slot))
                for run_id, job, status, slot in self.conn.execute(
                    "SELECT runs.id, jobs.name, runs.status, runs.scheduled_for FROM runs "
                    "LEFT JOIN jobs ON jobs.id = runs.job_id WHERE runs.id BETWEEN %s AND %s "
                    "ORDER BY runs.id DESC LIMIT %s",
                    (low, high, limit - len(rows)),
                )
            ]
            if len(rows) >= limit:
                break
        return rows
