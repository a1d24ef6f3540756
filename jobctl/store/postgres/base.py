"""What every group of PostgreSQL operations stands on: the connection and write transactions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg.abc import QueryNoTemplate

from jobctl.store.postgres.connection import Connection, connect
from jobctl.store.postgres.transaction import in_transaction, write_transaction

# The lock daemons' write transactions take first when they write in turn (events.py's
# EVENT_ORDER_LOCK: nearly every write also writes an event).
WRITE_TURN_LOCK = 0x6A6F6265  # "jobe"


class Connected:
    """Holds the connection; the operation groups are mixins over it.

    A connection the server or the network dropped (a restart, a failover) is opened again
    by the next operation: the one that saw it go fails (StoreError), the daemon's next
    step goes on."""

    url: str
    _conn: Connection
    in_turn: bool = False  # write transactions take WRITE_TURN_LOCK first (daemons)

    @property
    def conn(self) -> Connection:
        if self._conn.broken:
            self._conn = connect(self.url, migrate_schema=False)
        return self._conn

    def writes_in_turn(self) -> None:
        """Every write transaction of this store waits for the other daemons' first.

        A daemon's claim holds job rows and then takes the event-order lock (for
        `run.started`); another daemon's recording holds that lock and then updates the same
        jobs' counters: a deadlock. Daemons that take the lock first commit one at a time,
        as on SQLite; their claims are still shared by row locks and the run-per-slot key."""
        self.in_turn = True

    def _take_turn(self) -> None:
        if self.in_turn:
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_TURN_LOCK,))

    def value(self, sql: QueryNoTemplate, params: Sequence[Any] = ()) -> Any:
        """The first column of the one row an aggregate query returns."""
        row = self.conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    @contextmanager
    def write(self) -> Iterator[None]:
        """BEGIN ... COMMIT (rolled back on any exception); operations called inside join it."""
        with write_transaction(self.conn):
            self._take_turn()
            yield

    @contextmanager
    def joined(self) -> Iterator[None]:
        """The caller's write transaction when one is open, else one of its own."""
        if in_transaction(self.conn):
            yield
        else:
            with write_transaction(self.conn):
                self._take_turn()
                yield

    @property
    def in_transaction(self) -> bool:
        return in_transaction(self.conn)

    def close(self) -> None:
        self.conn.close()
