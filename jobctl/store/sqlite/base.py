"""What every group of SQLite operations stands on: the connection and write transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from jobctl.store.sqlite.transaction import write_transaction


class Connected:
    """Holds the connection; the operation groups are mixins over it."""

    conn: sqlite3.Connection

    def writes_in_turn(self) -> None:
        """Write transactions wait for each other's: SQLite always does (one writer)."""

    @contextmanager
    def write(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (rolled back on any exception); operations called
        inside join it."""
        with write_transaction(self.conn):
            yield

    @contextmanager
    def joined(self) -> Iterator[None]:
        """The caller's write transaction when one is open, else one of its own."""
        if self.conn.in_transaction:
            yield
        else:
            with write_transaction(self.conn):
                yield

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def close(self) -> None:
        self.conn.close()
