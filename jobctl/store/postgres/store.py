"""The PostgreSQL store: one connection and every operation, grouped by concern into mixins
that mirror the SQLite store's."""

from __future__ import annotations

from jobctl.store.postgres import connection, migrations
from jobctl.store.postgres.access import AccessOps
from jobctl.store.postgres.agents import AgentOps
from jobctl.store.postgres.approvals import ApprovalOps
from jobctl.store.postgres.budgets import BudgetOps
from jobctl.store.postgres.cancels import CancelOps
from jobctl.store.postgres.claims import ClaimOps
from jobctl.store.postgres.completion import CompletionOps
from jobctl.store.postgres.daemon_row import DaemonRowOps
from jobctl.store.postgres.definitions import DefinitionOps
from jobctl.store.postgres.events import EventOps
from jobctl.store.postgres.fleet import FleetOps
from jobctl.store.postgres.history import HistoryOps
from jobctl.store.postgres.hooks import HookOps
from jobctl.store.postgres.imports import ImportOps
from jobctl.store.postgres.jobs import JobOps
from jobctl.store.postgres.live import LiveOps
from jobctl.store.postgres.retention import RetentionOps
from jobctl.store.postgres.runs import RunOps
from jobctl.store.postgres.teams import TeamOps


class PostgresStore(
    DaemonRowOps,
    JobOps,
    AgentOps,
    RunOps,
    ClaimOps,
    HookOps,
    DefinitionOps,
    HistoryOps,
    CompletionOps,
    LiveOps,
    AccessOps,
    CancelOps,
    EventOps,
    FleetOps,
    ImportOps,
    BudgetOps,
    RetentionOps,
    TeamOps,
    ApprovalOps,
):
    """A jobctl database in PostgreSQL (`url` as given, password and all: show
    `connection.redact_url(url)`)."""

    def __init__(self, conn: connection.Connection, url: str, *, writable: bool = True) -> None:
        self._conn = conn
        self.url = url
        self.writable = writable

    def schema_version(self) -> int:
        """The migrations applied (0: jobctl never set this database up)."""
        return migrations.schema_version(self.conn)

    def count_jobs(self) -> int:
        return int(self.value("SELECT count(*) FROM jobs"))


def open_postgres_store(url: str) -> PostgresStore:
    """Open and migrate the PostgreSQL database at `url`."""
    return PostgresStore(connection.connect(url), url)


def open_postgres_read_only(url: str, *, timeout: float = 10) -> PostgresStore:
    """Open the database at `url` without migrating it (doctor, TAB completion): nothing
    is written; `timeout` seconds to connect (libpq counts whole seconds, at least 1)."""
    conn = connection.connect(url, migrate_schema=False, timeout=timeout)
    return PostgresStore(conn, url, writable=False)
