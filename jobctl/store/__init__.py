"""Where jobctl keeps its state: the only code that imports sqlite3 or speaks SQL.

What the store promises:

- Opening migrates: numbered migrations, each in its own transaction; a file that is not
  jobctl's, or has a newer schema, is refused and left as it was.
- `with store.write(): ...` is one short write transaction (BEGIN IMMEDIATE ... COMMIT,
  rolled back on any exception); an operation that says "own transaction" opens its own.
- Operations are named for what they do (`heartbeat`, `jobs_due_for_alert` ...), take and
  return models (aware datetimes, StrEnums, dataclasses), and apply no rules: what is due,
  what a gap means, retries and policies are decided by the engine and the jobs module.
- Errors of the database itself (a full disk, a locked or broken file) raise `StoreError`.
"""

from __future__ import annotations

from jobctl.store.protocol import Store
from jobctl.store.sqlite import (
    SqliteStore,
    StoreError,
    empty_store,
    open_store,
    open_store_for_completion,
    open_store_for_reading,
    open_store_read_only,
    peek_daemon_row,
)

__all__ = [
    "SqliteStore",
    "Store",
    "StoreError",
    "empty_store",
    "open_store",
    "open_store_for_completion",
    "open_store_for_reading",
    "open_store_read_only",
    "peek_daemon_row",
]
