"""What `jobctl db copy` carries from one database to another, table by table, in the order
that keeps references whole (jobs before their runs, runs before their output).

Each table has the key it is read in order of (a copy resumes after the highest key the
target holds) and how a row already there is treated: `upsert` rewrites it (jobs and agents
change while history only grows), `ignore` keeps it. The daemon rows, webhook replay keys,
login codes and sessions belong to the database they were made in and stay behind.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CopyTable:
    name: str
    key: tuple[str, ...]
    upsert: bool = False  # rewrite a row already copied (it may have changed since)
    resume: bool = False  # copy only rows after the highest key the target holds


COPY_TABLES = (
    CopyTable("agents", ("id",), upsert=True),
    CopyTable("jobs", ("id",), upsert=True),
    CopyTable("chains", ("job_id", "upstream_id", "on_status")),
    CopyTable("settings", ("key",)),
    CopyTable("runs", ("id",), resume=True),
    CopyTable("run_output", ("run_id", "seq"), resume=True),
    CopyTable("events", ("id",), resume=True),
)
COPY_MARKER = "copied_from"  # settings key: the source a target was copied from
