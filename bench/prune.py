"""Time `runs prune --keep N` of every job on a copy of a big history: job by job (the
per-job path, as before issue 18) against one walk in id order, in batches; id-order-plain
is that walk without its connection settings (pruning's WALK_SETTINGS but the cache).

python bench/prune.py                                   # /tmp/jobctl-bench-api.db, keep 1000
python bench/prune.py --db /tmp/jobctl-bench-history.db --rounds 3 --batch 5000 --batch 20000
python bench/prune.py --modes id-order                  # only the new path
python bench/prune.py --modes id-order-plain:5000,id-order --rounds 2   # before/after

The source database is never written: each timing gets a fresh copy (the WAL checkpointed
into the copy first), taken in turns mode after mode, round after round, so both see the
same page cache. Reports seconds, runs removed and rows per second; medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path("/tmp/jobctl-bench-api.db")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from jobctl.pruning import ID_ORDER_BATCH  # noqa: E402

# Run in a fresh interpreter against the copy; prints "removed seconds cpu-seconds" (the CPU
# time varies less than the wall time with other work on the machine).
CHILD = """
import sys, time
from datetime import timedelta
from pathlib import Path
from jobctl import history, pruning
from jobctl.store import open_store
from jobctl.store.sqlite import retention
from jobctl.timeutil import utcnow
mode, db, keep, batch = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if mode == "id-order-plain":
    retention.WALK_SETTINGS = {"cache_size": retention.WALK_SETTINGS["cache_size"]}
store = open_store(db)
start = time.perf_counter()
if mode == "job-by-job":
    removed = sum(history.prune_runs(store, utcnow(), keep=keep))
else:
    removed = sum(b.removed for b in pruning.prune_all(store, utcnow(), keep=keep, batch=batch))
print(removed, time.perf_counter() - start, time.process_time())
"""


def fresh_copy(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    conn = sqlite3.connect(target)  # a WAL beside the source is not copied: it is empty
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def time_mode(mode: str, copy: Path, keep: int, batch: int) -> tuple[int, float, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(copy), str(keep), str(batch)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    removed, seconds, cpu = done.stdout.split()
    return int(removed), float(seconds), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=SOURCE)
    parser.add_argument("--keep", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch", type=int, action="append", help="id-order batch (repeat)")
    parser.add_argument("--modes", default="job-by-job,id-order")
    parser.add_argument("--work", type=Path, default=Path("/tmp/jobctl-bench-prune.db"))
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    with sqlite3.connect(f"{args.db.as_uri()}?mode=ro", uri=True) as conn:
        total = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    print(f"{args.db}: {total:,} runs; runs prune --keep {args.keep}, {args.rounds} round(s)")
    plans = []
    for item in args.modes.split(","):  # MODE, or MODE:BATCH for that mode only
        mode, _, given = item.partition(":")
        batches = [int(given)] if given else (args.batch or [ID_ORDER_BATCH])
        plans += [(mode, 0 if mode == "job-by-job" else batch) for batch in batches]
    seconds: dict[tuple[str, int], list[float]] = {plan: [] for plan in plans}
    cpu: dict[tuple[str, int], list[float]] = {plan: [] for plan in plans}
    removed: dict[tuple[str, int], int] = {}
    try:
        for _ in range(args.rounds):
            for plan in plans:
                fresh_copy(args.db, args.work)
                removed[plan], elapsed, used = time_mode(plan[0], args.work, args.keep, plan[1])
                seconds[plan].append(elapsed)
                cpu[plan].append(used)
                print(
                    f"  {plan[0]:<14} batch {plan[1]:>6}: {elapsed:7.1f}s, CPU {used:5.1f}s "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.work}{suffix}").unlink(missing_ok=True)
    print(f"{'mode':<14} {'batch':>6} {'median s':>9} {'CPU s':>6} {'removed':>11} {'rows/s':>9}")
    for plan in plans:
        median = statistics.median(seconds[plan])
        print(
            f"{plan[0]:<14} {plan[1]:>6} {median:9.1f} {statistics.median(cpu[plan]):6.1f} "
            f"{removed[plan]:>11,} {removed[plan] / median:>9,.0f}"
        )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(bench took {time.perf_counter() - start:.0f}s)")
