"""`jobctl db copy`: move a database to another (SQLite to PostgreSQL, typically) without
losing a run: jobs, agents, chains, webhook secrets, settings, history and events, in
batches, resumable, with a count check at the end.

A copy writes its source's name into the target first; a second copy from the same source
continues where the first stopped (history after the highest id copied; jobs and agents
rewritten), so nothing is copied twice. A target that holds other jobs is refused, and so
is copying while a daemon runs on either side (the copy would miss what it does meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobctl.errors import Failed, InvalidInput
from jobctl.store.copy_tables import COPY_TABLES, CopyTable

if TYPE_CHECKING:
    from jobctl.store import Store

BATCH = 2000  # rows per transaction on the target
JOBS = next(table for table in COPY_TABLES if table.name == "jobs")


@dataclass(frozen=True)
class CopyResult:
    counts: dict[str, int]  # table -> rows in the target, equal to the source's
    resumed: bool


def check_target(target: Store, source_name: str) -> bool:
    """Failed unless the target is empty of jobs or a copy of this source; True when the
    copy resumes one that stopped."""
    origin = target.copied_from()
    if origin == source_name:
        return True
    jobs = target.copy_count(JOBS)
    if jobs:
        since = f" (a copy of {origin})" if origin else ""
        raise Failed(
            f"the target already holds {jobs} job{'s' if jobs != 1 else ''}{since}: copy into "
            "an empty database"
        )
    return False


def copy_database(
    source: Store,
    target: Store,
    source_name: str,
    progress: Callable[[str], None],
    batch: int = BATCH,
) -> CopyResult:
    """Copy every table of COPY_TABLES from `source` to `target`, then check the counts."""
    if batch < 1:
        raise InvalidInput("the batch size must be at least 1")
    resumed = check_target(target, source_name)
    target.copy_mark(source_name)
    for table in COPY_TABLES:
        _copy_table(source, target, table, progress, batch)
    target.copy_done()
    counts = {}
    wrong = []
    for table in COPY_TABLES:
        here, there = source.copy_count(table), target.copy_count(table)
        counts[table.name] = there
        if here != there:
            wrong.append(f"{table.name} {here} in the source, {there} in the target")
    if wrong:
        raise Failed(f"count check failed: {'; '.join(wrong)}")
    return CopyResult(counts, resumed)


def _copy_table(
    source: Store,
    target: Store,
    table: CopyTable,
    progress: Callable[[str], None],
    batch: int,
) -> None:
    total = source.copy_count(table)
    after = target.copy_last_key(table) if table.resume else None
    done = target.copy_count(table) if table.resume else 0
    progress(f"{table.name}: {min(done, total)}/{total}")
    while True:
        columns, rows = source.copy_batch(table, after, batch)
        if not rows:
            break
        target.copy_write(table, columns, rows)
        positions = [columns.index(key) for key in table.key]
        after = tuple(rows[-1][index] for index in positions)
        done += len(rows)
        progress(f"{table.name}: {min(done, total)}/{total}")
