"""`jobctl list` (table and --json) against `jobctl --version`, for one or more code trees
side by side, on copies of a big history (bench/history.py or bench/api_5m.py builds one).

python bench/list_wide.py --tree /tmp/base:/tmp/list-base.db --tree .:/tmp/list-new.db

Each --tree is CODE_DIR:DATABASE (a copy: a newer tree may migrate it). Commands run in
turns, tree after tree, --reps times after a warm-up, with bytecode written (so start-up is
what an installed jobctl pays). Output goes to a pipe (the table in full). Medians, and
the margin over --version.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

WALL = "--wall" in sys.argv
COMMANDS = (("--version",), ("list",), ("list", "--json"))


def env_for(code: str, db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": os.path.abspath(code), "JOBCTL_DB": db}


def once(code: str, db: str, args: tuple[str, ...]) -> float:
    """Milliseconds of CPU (user + system) the command used: steadier than the wall clock
    on a shared machine; --wall for the wall clock."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jobctl", *args],
        env=env_for(code, db),
        cwd=os.path.abspath(code),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    if WALL:
        return (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return used * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="CODE_DIR:DATABASE")
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--wall", action="store_true", help="wall-clock ms, not CPU ms")
    args = parser.parse_args()
    trees = [tuple(tree.split(":", 1)) for tree in args.tree]
    times: dict[tuple[str, tuple[str, ...]], list[float]] = {}
    for code, db in trees:
        for command in COMMANDS:
            once(code, db, command)  # warm-up: bytecode, migrations, page cache
    for _ in range(args.reps):
        for code, db in trees:
            for command in COMMANDS:
                times.setdefault((code, command), []).append(once(code, db, command))
    kind = "wall-clock" if args.wall else "CPU"
    print(f"medians of {args.reps}, {kind} ms (margin over --version)")
    for code, _ in trees:
        base = statistics.median(times[(code, COMMANDS[0])])
        cells = []
        for command in COMMANDS:
            median = statistics.median(times[(code, command)])
            margin = f" (+{median - base:.0f})" if command != COMMANDS[0] else ""
            cells.append(f"{' '.join(command)}: {median:.0f}{margin}")
        print(f"{code}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
