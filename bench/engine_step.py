"""The daemon's database work per fire, without HTTP: claim and record 1,000 due jobs.

    python bench/engine_step.py [-n 1000] [--rounds 5] [--history SECONDS] [--profile]

Prints the median wall and CPU time of one round (claim every due job of one second, then
record an outcome for each) and, with --profile, where that time goes. --history records
that many seconds (runs per job) first, as a daemon that has run a while has. CPU time is the
figure to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import cProfile
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
from jobctl.store import SqliteStore, open_store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make_database(jobs: int) -> SqliteStore:
    store = open_store(Path(tempfile.mkdtemp()) / "engine.db")
    with store.write():
        for index in range(jobs):
            job = build_job(
                JobChange(
                    name=f"j{index:05d}", url="http://127.0.0.1:9/x", every="1s", timezone="UTC"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="jobs due every second")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--history", type=int, default=0, help="seconds of runs recorded first (runs per job)"
    )
    args = parser.parse_args()
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
