"""Write transactions on PostgreSQL: BEGIN ... COMMIT at READ COMMITTED.

SQLite has one writer at a time; PostgreSQL lets writers run together, so the operations
that relied on the single writer take row locks instead (`due_jobs` locks the rows it
returns, `FOR UPDATE SKIP LOCKED`), and the unique key runs(job_id, trigger, scheduled_for,
attempt) still refuses a second run for one slot.

LOCK ORDER. Several daemons write at once, so the locks a write transaction takes come in
one order: jobs rows (by id), then runs rows, then the event-order lock (events.py: the
events' ids must commit in order), which is held to COMMIT. A claim takes its jobs with
SKIP LOCKED and waits for nothing before the event lock; a recording or a takeover, which
goes on to move its jobs' counters after writing events, locks those jobs first
(`lock_jobs`). Otherwise a claim holding a job and waiting for the event lock, and a
recording holding the event lock and waiting for that job, would deadlock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus


def in_transaction(conn: psycopg.Connection[Any]) -> bool:
    return conn.info.transaction_status != TransactionStatus.IDLE or _begin_pending(conn)


def _begin_pending(conn: psycopg.Connection[Any]) -> bool:
    return bool(getattr(conn, "begin_pending", False))


@contextmanager
def write_transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on any exception.

    On jobctl's connection BEGIN is sent with the first statement (`Cursor.execute`), in
    the same round trip; a transaction that ran none has nothing to commit."""
    if hasattr(conn, "begin_pending"):
        conn.begin_pending = True
    else:
        conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        if _begin_pending(conn):
            conn.begin_pending = False  # type: ignore[attr-defined]
        elif not conn.closed:
            conn.execute("ROLLBACK")
        raise
    if _begin_pending(conn):
        conn.begin_pending = False  # type: ignore[attr-defined]
        return
    try:
        conn.execute("COMMIT")
    except psycopg.Error:
        if in_transaction(conn):
            conn.execute("ROLLBACK")
        raise
