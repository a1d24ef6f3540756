"""What every group of PostgreSQL operations stands on: the connection and write transactions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg.abc import QueryNoTemplate

from jobctl.store.postgres.connection import Connection, connect
from jobctl.store.postgres.transaction import in_transaction, write_transaction


class Connected:
    """Holds the connection; the operation groups are mixins over it.

    A connection the server or the network dropped (a restart, a failover) is opened again
    by the next operation: the one that saw it go fails (StoreError), the daemon's next
    step goes on."""

    url: str
    _conn: Connection

    @property
    def conn(self) -> Connection:
        if self._conn.broken:
            self._conn = connect(self.url, migrate_schema=False)
        return self._conn

    def value(self, sql: QueryNoTemplate, params: Sequence[Any] = ()) -> Any:
        """The first column of the one row an aggregate query returns."""
        row = self.conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    @contextmanager
    def write(self) -> Iterator[None]:
        """BEGIN ... COMMIT (rolled back on any exception); operations called inside join it."""
        with write_transaction(self.conn):
            yield

    @contextmanager
    def joined(self) -> Iterator[None]:
        """The caller's write transaction when one is open, else one of its own."""
        if in_transaction(self.conn):
            yield
        else:
            with write_transaction(self.conn):
                yield

    @property
    def in_transaction(self) -> bool:
        return in_transaction(self.conn)

    def answered_at(self) -> float:
        """When (time.monotonic()) the server last answered this store's connection."""
        return self._conn.answered_at

    def close(self) -> None:
        self.conn.close()
