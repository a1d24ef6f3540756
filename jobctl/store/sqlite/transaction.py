"""Write transactions: BEGIN IMMEDIATE ... COMMIT.

Every transaction that may write starts with BEGIN IMMEDIATE: a deferred transaction that
reads and then writes fails at once with "database is locked" when the daemon wrote in
between, because the busy timeout cannot help a stale snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:  # SQLite rolls back by itself after some errors, not all
            conn.execute("ROLLBACK")
        raise
