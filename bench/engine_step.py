"""The daemon's database work per fire, without HTTP: claim and record 1,000 due jobs.

    python bench/engine_step.py [-n 1000] [--rounds 5] [--history SECONDS] [--profile]
    python bench/engine_step.py --spread [-n 3000] [--rounds 5] [--history SECONDS]

Prints the median wall and CPU time of one round (claim every due job of one second, then
record an outcome for each) and, with --profile, where that time goes. --history records
that many seconds (runs per job) first, as a daemon that has run a while has. CPU time is the
figure to compare on a shared machine.

--spread runs the daemon's loop instead: the jobs fire every second at offsets spread over
it (job k at k/n s), and every 50 ms the fires of the last tick are recorded and the next
50 ms claimed ahead (a batch of n/20 fires, two commits). A round is one second of that;
it prints the median CPU time and SQLite WAL frames written per fire (the WAL is emptied
before each round and not checkpointed during it): the pages each fire dirties, which grow
with the history when a batch's index entries do not share pages.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobctl import engine
from jobctl.actions import Outcome
from jobctl.catalog import insert_job
from jobctl.job_changes import build_job
from jobctl.models import JobChange, Owner
from jobctl.schedule import format_every
from jobctl.store import SqliteStore, open_store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


TICK = 0.05  # the spread loop's step, as the daemon claims ahead
OUTCOME_DETAILS = {
    "response_headers": {"Content-Length": "2", "Content-Type": "text/plain"},
    "final_url": "http://127.0.0.1:9/x",
    "redirects": 0,
    "body_size": 2,
}


def make_database(jobs: int, *, spread: bool = False) -> SqliteStore:
    store = open_store(Path(tempfile.mkdtemp()) / "engine.db")
    with store.write():
        for index in range(jobs):
            offset = timedelta(milliseconds=index * 1000 // jobs) if spread else timedelta()
            job = build_job(
                JobChange(
                    name=f"j{index:05d}",
                    url="http://127.0.0.1:9/x",
                    every=format_every(timedelta(seconds=1), offset),
                    timezone="UTC",
                ),
                existing=None,
                now=T0,
            )
            insert_job(store, job, T0)
    return store


def one_round(store: SqliteStore, second: int) -> int:
    now = T0 + timedelta(seconds=second, milliseconds=5)
    owner = Owner.this_process()
    claims: list[engine.Claim] = []
    while True:
        step = engine.claim_due(store, now, awake_since=T0, owner=owner)
        if not step.claims:
            break
        claims += step.claims
    finished = now + timedelta(milliseconds=3)
    snapshot = {"method": "GET", "url": "http://127.0.0.1:9/x", "headers": {}, "body": None}
    engine.record_outcomes(
        store,
        [
            (
                claim,
                Outcome(
                    status="succeeded",
                    started_at=now,
                    finished_at=finished,
                    http_status=200,
                    output="ok",
                    snapshot=snapshot,
                    details={"response_headers": {"Content-Length": "2"}},
                ),
            )
            for claim in claims
        ],
        now,
    )
    return len(claims)


def spread_ticks(store: SqliteStore, start: float, seconds: float) -> int:
    """The daemon's loop from `start` (seconds after T0) for `seconds`: each tick records
    the last tick's fires, then claims the next TICK ahead. The fires recorded."""
    owner = Owner.this_process()
    snapshot = {"method": "GET", "url": "http://127.0.0.1:9/x", "headers": {}, "body": None}
    pending: list[engine.Claim] = []
    fired = 0
    for tick in range(round(seconds / TICK)):
        now = T0 + timedelta(seconds=start + tick * TICK)
        if pending:
            done = now - timedelta(milliseconds=20)
            engine.record_outcomes(
                store,
                [
                    (
                        claim,
                        Outcome(
                            status="succeeded",
                            started_at=done - timedelta(milliseconds=3),
                            finished_at=done,
                            http_status=200,
                            output="ok",
                            snapshot=snapshot,
                            details=OUTCOME_DETAILS,
                        ),
                    )
                    for claim in pending
                ],
                now,
            )
            fired += len(pending)
        pending = engine.claim_due(store, now, awake_since=T0, owner=owner, ahead=TICK).claims
    return fired


def wal_frames(store: SqliteStore) -> float:
    """Frames in the WAL file (4 KiB pages, a 24-byte header each, after the 32-byte one)."""
    path = store.conn.execute("PRAGMA database_list").fetchone()[2] + "-wal"
    page = store.conn.execute("PRAGMA page_size").fetchone()[0]
    return max(0, os.path.getsize(path) - 32) / (page + 24)


def main_spread(jobs: int, rounds: int, history: int) -> None:
    store = make_database(jobs, spread=True)
    start = 1.0
    spread_ticks(store, start, history + 1)  # the history, then a second to warm caches
    start += history + 1
    store.conn.execute("PRAGMA wal_autocheckpoint = 0")
    cpu, frames = [], []
    for _ in range(rounds):
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        start_cpu = time.process_time()
        fired = spread_ticks(store, start, 1.0)
        cpu.append((time.process_time() - start_cpu) * 1e6 / fired)
        frames.append(wal_frames(store) / fired)
        start += 1.0
    print(
        f"{jobs} jobs spread, {history} s of history: CPU median {statistics.median(cpu):.1f} "
        f"us per fire {[round(c, 1) for c in cpu]}, WAL frames per fire median "
        f"{statistics.median(frames):.2f} {[round(f, 2) for f in frames]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, help="jobs due every second (1000; --spread: 3000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--history", type=int, default=0, help="seconds of runs recorded first (runs per job)"
    )
    parser.add_argument("--spread", action="store_true", help="the daemon's loop (see above)")
    args = parser.parse_args()
    if args.spread:
        main_spread(args.n or 3000, args.rounds, args.history)
        return
    args.n = args.n or 1000
    store = make_database(args.n)
    for second in range(1, 2 + args.history):  # the history, then a round to warm caches
        one_round(store, second)
    first = 2 + args.history
    times, cpu = [], []
    for second in range(first, first + args.rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        count = one_round(store, second)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    median, median_cpu = statistics.median(times), statistics.median(cpu)
    print(
        f"{count} claims + records per round: median {median:.0f} ms "
        f"({median * 1000 / count:.0f} us per fire), rounds {[round(t) for t in times]}; "
        f"CPU median {median_cpu:.0f} ms ({median_cpu * 1000 / count:.0f} us per fire)"
    )
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        one_round(store, first + args.rounds)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
