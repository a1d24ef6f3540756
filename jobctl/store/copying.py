"""What `jobctl db copy` moves from an SQLite database to a PostgreSQL one, table by table.

Both stores name their tables and columns alike. Each table is read in key order, in
batches, after the highest key the target already has, so a copy that stopped resumes
where it was; a row the target has already is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CopiedTable:
    """A table `db copy` moves: its integer key columns (the order it is read in), or
    none for a small table read whole each time."""

    name: str
    keys: tuple[str, ...]


# Parents before children: the foreign keys hold at every batch. Sessions, login codes
# and the daemon's heartbeat are this machine's, not the history: they are not copied.
COPIED_TABLES = (
    CopiedTable("jobs", ("id",)),
    CopiedTable("agents", ("id",)),
    CopiedTable("chains", ()),
    CopiedTable("hook_deliveries", ()),
    CopiedTable("settings", ()),
    CopiedTable("runs", ("id",)),
    CopiedTable("run_output", ("run_id", "seq")),
    CopiedTable("events", ("id",)),
)
