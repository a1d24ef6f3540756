"""The SQLite implementation of the store: connection handling, migrations, operations."""

from __future__ import annotations

from sqlite3 import Error as StoreError

from jobctl.store.sqlite.connection import (
    BUSY_TIMEOUT_MS,
    configure,
    connect,
    connect_for_reading,
    empty_database,
    open_read_only,
    require_jobctl_file,
    require_writable,
    unwritable_reason,
)
from jobctl.store.sqlite.daemon_row import peek_daemon_row
from jobctl.store.sqlite.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    check_owned,
    execute_script,
    migrate,
    schema_version,
)
from jobctl.store.sqlite.store import (
    SqliteStore,
    empty_store,
    open_store,
    open_store_for_completion,
    open_store_for_reading,
    open_store_read_only,
)
from jobctl.store.sqlite.transaction import write_transaction

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "SqliteStore",
    "StoreError",
    "check_owned",
    "configure",
    "connect",
    "connect_for_reading",
    "empty_database",
    "empty_store",
    "execute_script",
    "migrate",
    "open_read_only",
    "open_store",
    "open_store_for_completion",
    "open_store_for_reading",
    "open_store_read_only",
    "peek_daemon_row",
    "require_jobctl_file",
    "require_writable",
    "schema_version",
    "unwritable_reason",
    "write_transaction",
]
