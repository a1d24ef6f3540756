"""`jobctl db copy --to postgresql://...`: an SQLite database's jobs, agents, chains, history
and events moved into PostgreSQL, in batches, resumable, counted at the end.

Each batch is one transaction on the target; a copy that stopped (Ctrl-C, a lost
connection) starts again after the highest key the target holds. The daemon on the source
should be stopped first: runs it records meanwhile would be missing from the copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobctl.errors import Failed
from jobctl.store.copying import COPIED_TABLES, CopiedTable

if TYPE_CHECKING:
    from jobctl.store import SqliteStore
    from jobctl.store.postgres import PostgresStore

BATCH_ROWS = 2000

Progress = Callable[[str, int, int], None]  # table, rows there so far, rows in the source


@dataclass(frozen=True)
class CopiedCount:
    table: str
    rows: int


def copy_database(
    source: SqliteStore, target: PostgresStore, *, batch: int = BATCH_ROWS, progress: Progress
) -> list[CopiedCount]:
    """Copy every table of COPIED_TABLES; Failed when a table's rows do not add up at the
    end (something else wrote to the target, or to the source meanwhile)."""
    foreign = target.job_identities() - source.job_identities()
    if foreign:
        raise Failed(
            f"the target holds {len(foreign)} job(s) that are not this database's "
            "(another database's, or added there): copy into an empty database"
        )
    counts = []
    for table in COPIED_TABLES:
        total = source.row_count(table)
        _copy_table(source, target, table, batch, total, progress)
        counts.append(CopiedCount(table.name, total))
    with target.write():
        target.follow_copied_ids()
    for table in COPIED_TABLES:
        there, here = source.row_count(table), target.row_count(table)
        if there != here:
            raise Failed(
                f"{table.name}: {there} rows in the source but {here} in the copy: is a daemon "
                "writing to either? Stop it and copy again (the copy resumes)"
            )
    return counts


def _copy_table(
    source: SqliteStore,
    target: PostgresStore,
    table: CopiedTable,
    batch: int,
    total: int,
    progress: Progress,
) -> None:
    columns = source.table_columns(table)
    positions = [columns.index(key) for key in table.keys]
    after = target.last_key(table)
    done = target.row_count(table)
    progress(table.name, done, total)
    while True:
        rows = source.rows_after(table, after, batch)
        with target.write():
            target.insert_copied_rows(table, columns, rows)
        done = target.row_count(table) if not table.keys else done + len(rows)
        progress(table.name, done, total)
        if not table.keys or len(rows) < batch:
            return
        after = tuple(rows[-1][position] for position in positions)
