"""The daemon's database work per fire, without HTTP: claim and record 1,000 due jobs.

    python bench/engine_step.py [-n 1000] [--rounds 5] [--history SECONDS] [--profile]
    python bench/engine_step.py --spread [-n 3000] [--seconds 10] [--history 15] [--rounds 5]

Prints the median wall and CPU time of one round (claim every due job of one second, then
record an outcome for each) and, with --profile, where that time goes. --history records
that many seconds (runs per job) first, as a daemon that has run a while has. CPU time is the
figure to compare on a shared machine.

--spread is the daemon's loop when its jobs' phases are spread (job k at k/N of a second):
every 50 ms it records what the step before claimed, then claims the next 50 ms ahead
(`ahead`, as the daemon does), for --seconds seconds a round; it prints the median CPU per
fire of the rounds (each starts from a copy of the database the history left, and warms
its caches with 1 s first), the SQLite WAL frames written per fire (the WAL is emptied
before each round and not checkpointed during it: the pages each fire dirties, which grow
with the history when a batch's index entries do not share pages) and, with --profile,
where one more round's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
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
STEP = 0.05  # --spread: the daemon's claim-ahead and its busy recording period (FLUSH_EVERY)


def make_database(jobs: int, *, spread: bool = False) -> SqliteStore:
    """`jobs` one-second jobs, on the same instant or (`spread`) job k at k/jobs s."""
    store = open_store(Path(tempfile.mkdtemp()) / "engine.db")
    with store.write():
        for index in range(jobs):
            offset = timedelta(milliseconds=index * 1000 // jobs if spread else 0)
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


def http_outcome(at: datetime) -> Outcome:
    """What an HTTP fire that answered `ok` at once returns (a snapshot and details of the
    usual size)."""
    return Outcome(
        status="succeeded",
        started_at=at,
        finished_at=at + timedelta(milliseconds=3),
        http_status=200,
        output="ok",
        snapshot={
            "method": "GET",
            "url": "http://127.0.0.1:9/x",
            "headers": {
                "User-Agent": "jobctl/1",
                "X-Jobctl-Job": "j00001",
                "X-Jobctl-Run": "123",
                "X-Jobctl-Scheduled-For": "2026-06-01T12:00:00Z",
            },
            "body": None,
        },
        details={
            "response_headers": {"Content-Length": "2", "Content-Type": "text/plain", "Date": "x"},
            "final_url": "http://127.0.0.1:9/x",
            "redirects": 0,
            "body_size": 2,
            "timings": {"total_ms": 1.2},
        },
    )


def spread_round(store: SqliteStore, start: float, seconds: float) -> tuple[int, float]:
    """The daemon's loop from `start` s for `seconds`: every STEP, record what the step
    before claimed, then claim the next STEP ahead. The fires and their CPU seconds."""
    owner = Owner.this_process()
    pending: list[tuple[engine.Claim, Outcome]] = []
    fires = 0
    started = time.process_time()
    for tick in range(round(seconds / STEP) + 1):
        now = T0 + timedelta(seconds=start + tick * STEP)
        if pending:
            engine.record_outcomes(store, pending, now)
            fires += len(pending)
            pending = []
        if tick * STEP < seconds:
            step = engine.claim_due(store, now, awake_since=T0, owner=owner, ahead=STEP)
            pending = [(claim, http_outcome(now)) for claim in step.claims]
    return fires, time.process_time() - started


def spread(args: argparse.Namespace) -> None:
    jobs = args.n or 3000
    store = make_database(jobs, spread=True)
    if args.history:
        spread_round(store, 0, args.history)
    made = Path(store.conn.execute("PRAGMA database_list").fetchone()[2])
    store.close()
    per_fire: list[float] = []
    frames: list[float] = []
    for _ in range(args.rounds + args.profile):  # each round from a copy of the same file
        copy = Path(tempfile.mkdtemp()) / made.name
        shutil.copyfile(made, copy)
        store = open_store(copy)
        spread_round(store, args.history, 1)  # warms the caches
        store.conn.execute("PRAGMA wal_autocheckpoint = 0")
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if len(per_fire) == args.rounds:
            profile = cProfile.Profile()
            profile.enable()
            spread_round(store, args.history + 1, args.seconds)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
        else:
            fires, cpu = spread_round(store, args.history + 1, args.seconds)
            per_fire.append(cpu / fires * 1e6)
            frames.append(wal_frames(store) / fires)
        store.close()
        shutil.rmtree(copy.parent)
    print(
        f"spread, {jobs} jobs, history {args.history} s, {args.seconds:g} s a round: "
        f"CPU per fire median {statistics.median(per_fire):.1f} us, "
        f"rounds {[round(value, 1) for value in per_fire]}; WAL frames per fire median "
        f"{statistics.median(frames):.2f}"
    )


def wal_frames(store: SqliteStore) -> float:
    """Frames in the WAL file (a page and a 24-byte header each, after the 32-byte one)."""
    path = store.conn.execute("PRAGMA database_list").fetchone()[2] + "-wal"
    page = store.conn.execute("PRAGMA page_size").fetchone()[0]
    return max(0, os.path.getsize(path) - 32) / (page + 24)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", type=int, default=0, help="jobs due every second (1,000; --spread: 3,000)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--history", type=int, default=0, help="seconds of runs recorded first (runs per job)"
    )
    parser.add_argument("--spread", action="store_true", help="phases spread, claimed ahead")
    parser.add_argument("--seconds", type=float, default=10, help="--spread: seconds a round")
    parser.add_argument("--top", type=int, default=15, help="--profile: functions shown")
    args = parser.parse_args()
    if args.spread:
        spread(args)
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
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
