"""What every group of SQLite operations stands on: the connection and write transactions."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from jobctl.store.sqlite.transaction import write_transaction


class Connected:
    """Holds the connection; the operation groups are mixins over it."""

    conn: sqlite3.Connection

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

    def answered_at(self) -> float:
        """A file in this process answers at once: now."""
        return time.monotonic()

    def close(self) -> None:
        self.conn.close()
