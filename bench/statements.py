"""SQL statements the daemon's path runs per claim step and per group commit.

    python bench/statements.py [-n 1,10,100,1000]
    python bench/statements.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

For N jobs due in one second: the statements of the claim step (every slot fired), of
recording their outcomes (half succeeded, half failed), and of the next second's claim while
all N are still in flight (every slot skipped by the overlap policy), counted with sqlite3's
trace callback (BEGIN and COMMIT included), in total and per fire. With --postgres, on a
throwaway database of that server, counting the statements psycopg's cursors execute (BEGIN
and COMMIT are not among them; the advisory locks are).
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobctl import engine
from jobctl.actions import Outcome
from jobctl.catalog import insert_job
from jobctl.job_changes import build_job
from jobctl.models import JobChange, Owner
from jobctl.paths import PostgresUrl
from jobctl.store import SqliteStore, Store, open_store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def add_jobs(store: Store, jobs: int) -> None:
    with store.write():
        for index in range(jobs):
            change = JobChange(
                name=f"j{index:05d}", url="http://127.0.0.1:9/x", every="1s", timezone="UTC"
            )
            insert_job(store, build_job(change, existing=None, now=T0), T0)


@contextmanager
def sqlite_store(jobs: int, _server: str) -> Iterator[tuple[Store, Callable[[], int]]]:
    store = open_store(Path(tempfile.mkdtemp()) / "statements.db")
    assert isinstance(store, SqliteStore)
    add_jobs(store, jobs)
    count = [0]

    def trace(_sql: str) -> None:
        count[0] += 1

    def take() -> int:
        taken, count[0] = count[0], 0
        return taken

    store.conn.set_trace_callback(trace)
    try:
        yield store, take
    finally:
        store.close()


@contextmanager
def postgres_store(jobs: int, server: str) -> Iterator[tuple[Store, Callable[[], int]]]:
    import psycopg

    from jobctl.store.postgres.connection import Cursor

    name = f"jobctl_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    count = [0]
    execute = Cursor.execute

    def counted(self: Cursor, *args: object, **kwargs: object) -> Cursor:
        count[0] += 1
        return execute(self, *args, **kwargs)  # type: ignore[arg-type]

    def take() -> int:
        taken, count[0] = count[0], 0
        return taken

    store = open_store(PostgresUrl(server.rsplit("/", 1)[0] + "/" + name))
    try:
        add_jobs(store, jobs)
        Cursor.execute = counted  # type: ignore[method-assign]
        yield store, take
    finally:
        Cursor.execute = execute  # type: ignore[method-assign]
        store.close()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}"')


def outcome(now: datetime, index: int) -> Outcome:
    ok = index % 2 == 0
    return Outcome(
        status="succeeded" if ok else "failed",
        started_at=now,
        finished_at=now + timedelta(milliseconds=3),
        http_status=200 if ok else 503,
        error=None if ok else "HTTP 503",
        output="ok",
        snapshot={"method": "GET", "url": "http://127.0.0.1:9/x", "headers": {}, "body": None},
    )


def measure(opened: Callable[[int, str], Any], jobs: int, server: str) -> tuple[int, int, int]:
    with opened(jobs, server) as (store, take):
        owner = Owner.this_process()
        first = T0 + timedelta(seconds=1, milliseconds=5)
        warm = engine.claim_due(store, first, awake_since=T0, owner=owner, limit=jobs)
        engine.record_outcomes(store, [(c, outcome(first, 0)) for c in warm.claims], first)
        take()  # the warm-up is not counted
        now = first + timedelta(seconds=1)
        claimed = engine.claim_due(store, now, awake_since=T0, owner=owner, limit=jobs)
        claim = take()
        assert len(claimed.claims) == jobs, len(claimed.claims)
        skipping = engine.claim_due(
            store, now + timedelta(seconds=1), awake_since=T0, owner=owner, limit=jobs
        )
        skip = take()
        assert len(skipping.skipped) == jobs, len(skipping.skipped)
        finished = [(c, outcome(now, i)) for i, c in enumerate(claimed.claims)]
        engine.record_outcomes(store, finished, now)
        record = take()
    return claim, record, skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", default="1,10,100,1000", help="jobs due (comma-separated)")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server, instead of SQLite")
    args = parser.parse_args()
    opened = postgres_store if args.postgres else sqlite_store
    print(f"{'jobs':>6} {'claim':>7} {'record':>7} {'skip':>7}   per fire: claim record skip")
    for jobs in (int(n) for n in args.n.split(",")):
        claim, record, skip = measure(opened, jobs, args.postgres or "")
        print(
            f"{jobs:>6} {claim:>7} {record:>7} {skip:>7}   "
            f"{claim / jobs:>15.2f} {record / jobs:>6.2f} {skip / jobs:>4.2f}"
        )


if __name__ == "__main__":
    main()
