"""Where jobctl keeps its state: the only code that speaks SQL (sqlite3 in `store.sqlite`,
psycopg in `store.postgres`).

What the store promises:

- Opening migrates: numbered migrations, each in its own transaction; a database that is
  not jobctl's, or has a newer schema, is refused and left as it was.
- `with store.write(): ...` is one short write transaction (BEGIN IMMEDIATE ... COMMIT on
  SQLite, BEGIN ... COMMIT with row locks on PostgreSQL, rolled back on any exception); an
  operation that says "own transaction" opens its own.
- Operations are named for what they do (`heartbeat`, `jobs_due_for_alert` ...), take and
  return models (aware datetimes, StrEnums, dataclasses), and apply no rules: what is due,
  what a gap means, retries and policies are decided by the engine and the jobs module.
- Errors of the database itself (a full disk, a locked or broken file, a lost connection)
  raise `StoreError`.

`--db` (or JOBCTL_DB) picks the store: a path is an SQLite file (the default, needing
nothing more), a `postgresql://` URL a PostgreSQL database (the `jobctl[postgres]` extra:
psycopg is imported only then).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jobctl.paths import DbLocation, PostgresUrl
from jobctl.store.lazy import lazy_attributes

if TYPE_CHECKING:
    from jobctl.models import DaemonRow
    from jobctl.store.postgres import PostgresStore
    from jobctl.store.protocol import Store
    from jobctl.store.sqlite import (
        SqliteStore,
        StoreError,
        empty_store,
        open_store_read_only,
    )

# Imported when first asked for, not with the package: `list` reads through the light
# jobctl.store.sqlite.connection and jobctl.store.sqlite.listing alone (the operations and the
# models they return are ~25 ms of start-up).
_LAZY = {
    "Store": "jobctl.store.protocol",
    "SqliteStore": "jobctl.store.sqlite",
    "StoreError": "jobctl.store.sqlite",
    "empty_store": "jobctl.store.sqlite",
    "open_store_read_only": "jobctl.store.sqlite",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


def open_store(location: DbLocation, *, create: bool = True) -> Store:
    """Open (creating a missing SQLite file if asked) and migrate the database, for
    reading and writing."""
    if isinstance(location, PostgresUrl):
        return open_postgres(location)
    from jobctl.store import sqlite

    return sqlite.open_store(location, create=create)


def open_store_for_reading(location: DbLocation) -> Store:
    """An existing database for a command that only reads (see the SQLite store's)."""
    if isinstance(location, PostgresUrl):
        return open_postgres(location)
    from jobctl.store import sqlite

    return sqlite.open_store_for_reading(location)


def open_store_for_completion(location: DbLocation) -> Store | None:
    """The database read for TAB completion, or None where there is none to read (never
    created or migrated; PostgreSQL gets a second to answer)."""
    if isinstance(location, PostgresUrl):
        from jobctl.store.postgres import open_postgres_read_only

        return open_postgres_read_only(location.url, timeout=1)
    if not Path(location).is_file():
        return None
    from jobctl.store import sqlite

    return sqlite.open_store_for_completion(location)


def peek_daemon_row(location: DbLocation, *, timeout: float = 1.0) -> DaemonRow | None:
    """The heartbeat row, read without creating or migrating anything: None when there is
    none, or the database cannot be read."""
    from jobctl.store import sqlite

    if isinstance(location, Path):
        return sqlite.peek_daemon_row(location, timeout=timeout)
    try:
        from jobctl.store.postgres import open_postgres_read_only
    except ImportError:
        return None
    from jobctl.errors import JobctlError

    try:
        store = open_postgres_read_only(location.url)
    except (sqlite.StoreError, JobctlError):
        return None
    try:
        return store.daemon_row()
    except sqlite.StoreError:
        return None
    finally:
        store.close()


def open_postgres(location: PostgresUrl) -> PostgresStore:
    """The PostgreSQL database at `location`, opened and migrated (for what only it offers:
    `db copy` writes into it)."""
    from jobctl.errors import Failed

    try:
        from jobctl.store.postgres import open_postgres_store
    except ImportError:
        raise Failed(
            "PostgreSQL needs the psycopg driver: pip install 'jobctl[postgres]'"
        ) from None
    return open_postgres_store(location.url)


__all__ = [
    "SqliteStore",
    "Store",
    "StoreError",
    "empty_store",
    "open_postgres",
    "open_store",
    "open_store_for_completion",
    "open_store_for_reading",
    "open_store_read_only",
    "peek_daemon_row",
]
