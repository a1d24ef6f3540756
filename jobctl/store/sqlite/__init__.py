"""The SQLite implementation of the store: connection handling, migrations, operations.

The names below are imported when first asked for, so that a submodule (`connection`,
`listing`) can be imported without the operations and the models they return."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobctl.store.lazy import lazy_attributes

if TYPE_CHECKING:
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

_HOMES = {
    "jobctl.store.sqlite.connection": (
        "BUSY_TIMEOUT_MS",
        "configure",
        "connect",
        "connect_for_reading",
        "empty_database",
        "open_read_only",
        "require_jobctl_file",
        "require_writable",
        "unwritable_reason",
    ),
    "jobctl.store.sqlite.daemon_row": ("peek_daemon_row",),
    "jobctl.store.sqlite.migrations": (
        "MIGRATIONS",
        "SCHEMA_VERSION",
        "Migration",
        "check_owned",
        "execute_script",
        "migrate",
        "schema_version",
    ),
    "jobctl.store.sqlite.store": (
        "SqliteStore",
        "empty_store",
        "open_store",
        "open_store_for_completion",
        "open_store_for_reading",
        "open_store_read_only",
    ),
    "jobctl.store.sqlite.transaction": ("write_transaction",),
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names}
__getattr__ = lazy_attributes(__name__, _LAZY | {"StoreError": "sqlite3:Error"})


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
