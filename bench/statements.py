"""SQL statements the daemon's path runs per claim step and per group commit (SQLite).

    python bench/statements.py [-n 1,10,100,1000]

For N jobs due in one second: the statements of the claim step (every slot fired), of
recording their outcomes (half succeeded, half failed), and of the next second's claim while
all N are still in flight (every slot skipped by the overlap policy), counted with sqlite3's
trace callback (BEGIN and COMMIT included), in total and per fire.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobctl import engine
from jobctl.actions import Outcome
from jobctl.catalog import insert_job
from jobctl.job_changes import build_job
from jobctl.models import JobChange, Owner
from jobctl.store import SqliteStore, open_store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make_database(jobs: int) -> SqliteStore:
    store = open_store(Path(tempfile.mkdtemp()) / "statements.db")
    assert isinstance(store, SqliteStore)
    with store.write():
        for index in range(jobs):
            change = JobChange(
                name=f"j{index:05d}", url="http://127.0.0.1:9/x", every="1s", timezone="UTC"
            )
            insert_job(store, build_job(change, existing=None, now=T0), T0)
    return store


class Counter:
    def __init__(self, store: SqliteStore) -> None:
        self.count = 0
        store.conn.set_trace_callback(self.trace)

    def trace(self, _sql: str) -> None:
        self.count += 1

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


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


def measure(jobs: int) -> tuple[int, int, int]:
    store = make_database(jobs)
    owner = Owner.this_process()
    first = T0 + timedelta(seconds=1, milliseconds=5)
    engine.claim_due(store, first, awake_since=T0, owner=owner)  # warm: not counted
    store.conn.execute("UPDATE runs SET status = 'succeeded' WHERE status = 'running'")
    counter = Counter(store)
    now = first + timedelta(seconds=1)
    claimed = engine.claim_due(store, now, awake_since=T0, owner=owner, limit=jobs)
    claim = counter.take()
    assert len(claimed.claims) == jobs, len(claimed.claims)
    skipping = engine.claim_due(
        store, now + timedelta(seconds=1), awake_since=T0, owner=owner, limit=jobs
    )
    skip = counter.take()
    assert len(skipping.skipped) == jobs, len(skipping.skipped)
    finished = [(c, outcome(now, i)) for i, c in enumerate(claimed.claims)]
    engine.record_outcomes(store, finished, now)
    record = counter.take()
    store.close()
    return claim, record, skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", default="1,10,100,1000", help="jobs due (comma-separated)")
    args = parser.parse_args()
    print(f"{'jobs':>6} {'claim':>7} {'record':>7} {'skip':>7}   per fire: claim record skip")
    for jobs in (int(n) for n in args.n.split(",")):
        claim, record, skip = measure(jobs)
        print(
            f"{jobs:>6} {claim:>7} {record:>7} {skip:>7}   "
            f"{claim / jobs:>15.2f} {record / jobs:>6.2f} {skip / jobs:>4.2f}"
        )


if __name__ == "__main__":
    main()
