"""The SQLite store: one connection and every operation, grouped by concern into mixins."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jobctl.store.sqlite import connection
from jobctl.store.sqlite.access import AccessOps
from jobctl.store.sqlite.agents import AgentOps
from jobctl.store.sqlite.approvals import ApprovalOps
from jobctl.store.sqlite.backup import FileOps
from jobctl.store.sqlite.budgets import BudgetOps
from jobctl.store.sqlite.cancels import CancelOps
from jobctl.store.sqlite.claims import ClaimOps
from jobctl.store.sqlite.completion import CompletionOps
from jobctl.store.sqlite.daemon_row import DaemonRowOps
from jobctl.store.sqlite.definitions import DefinitionOps
from jobctl.store.sqlite.events import EventOps
from jobctl.store.sqlite.export import ExportOps
from jobctl.store.sqlite.fleet import FleetOps
from jobctl.store.sqlite.history import HistoryOps
from jobctl.store.sqlite.hooks import HookOps
from jobctl.store.sqlite.jobs import JobOps
from jobctl.store.sqlite.live import LiveOps
from jobctl.store.sqlite.retention import RetentionOps
from jobctl.store.sqlite.runs import RunOps
from jobctl.store.sqlite.teams import TeamOps


class SqliteStore(
    DaemonRowOps,
    JobOps,
    AgentOps,
    RunOps,
    ClaimOps,
    HookOps,
    FileOps,
    DefinitionOps,
    HistoryOps,
    CompletionOps,
    LiveOps,
    AccessOps,
    CancelOps,
    EventOps,
    FleetOps,
    ExportOps,
    BudgetOps,
    RetentionOps,
    TeamOps,
    ApprovalOps,
):
    """A jobctl database in SQLite.

    `conn` is the raw connection, for the modules whose SQL has not moved here yet and for
    tests that look at the file directly.
    """

    def __init__(self, conn: sqlite3.Connection, *, writable: bool = True) -> None:
        self.conn = conn
        self.writable = writable


def open_store(path: Path, *, create: bool = True) -> SqliteStore:
    """Open (creating if asked) and migrate the database at `path`, for reading and writing."""
    return SqliteStore(connection.connect(path, create=create))


def open_store_for_reading(path: Path) -> SqliteStore:
    """An existing database for a command that only reads; read-only (and then not
    `writable`) where this process may not write it."""
    conn, writable = connection.connect_for_reading(path)
    return SqliteStore(conn, writable=writable)


def open_store_read_only(path: Path) -> SqliteStore:
    """An existing file, only read: never created, migrated or written, whatever its schema
    (for doctor and restore's checks). The store's errors are raised as they come."""
    return SqliteStore(connection.open_read_only(path), writable=False)


def empty_store() -> SqliteStore:
    """An empty database in memory: what a database not created yet reads as."""
    return SqliteStore(connection.empty_database(), writable=False)


def open_store_for_completion(path: Path) -> SqliteStore:
    """An existing database read-only for TAB completion: never created or migrated, and a
    short busy timeout (a busy database means no suggestions, not a wait)."""
    conn = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=0.2)
    return SqliteStore(conn, writable=False)
