"""What storing output while runs are in flight costs the daemon, per fire.

    python bench/streaming.py [--jobs 16] [--lines 10] [--seconds 10] [--rounds 5]

Each round starts two real `jobctl daemon` processes one after the other, streaming on
(the default) and off (`JOBCTL_STREAM_OUTPUT=0`), in alternating order, each on a fresh
database with the same `--jobs` exec jobs firing every second; each job prints `--lines`
lines 20 ms apart (so a run's output comes in several pieces, as a long job's does). After
a warm-up, the daemon's own CPU time (utime+stime from /proc/PID/stat, its children not
included) over `--seconds` is divided by the runs that finished in that window. The medians
over the rounds are printed, with the pieces and run.output events stored per fire.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 3.0  # seconds after the daemon is ready before the window opens


@dataclass
class Sample:
    streaming: bool
    cpu_ms_per_fire: float
    fires: int
    pieces_per_fire: float
    events_per_fire: float


def jobctl(db: Path, *args: str) -> None:
    env = {**os.environ, "JOBCTL_DB": str(db)}
    subprocess.run(
        [sys.executable, "-m", "jobctl", *args], env=env, cwd=ROOT, check=True, capture_output=True
    )


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def count(db: Path, sql: str, *params: object) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


def measure(streaming: bool, jobs: int, lines: int, seconds: float) -> Sample:
    with tempfile.TemporaryDirectory(prefix="jobctl-stream-bench-") as tmp:
        db = Path(tmp) / "jobs.db"
        command = f"for i in $(seq {lines}); do echo line $i of a long job; sleep 0.02; done"
        for number in range(jobs):
            jobctl(db, "add", f"job{number}", "--exec", command, "--every", "1s")
        env = {
            **os.environ,
            "JOBCTL_DB": str(db),
            "JOBCTL_STREAM_OUTPUT": "1" if streaming else "0",
        }
        log = open(Path(tmp) / "daemon.log", "w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "daemon"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while count(db, "SELECT count(*) FROM daemon") == 0:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit("the daemon did not start")
                time.sleep(0.1)
            time.sleep(WARMUP)
            finished = "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL"
            runs_before, pieces_before = (
                count(db, finished),
                count(db, "SELECT count(*) FROM run_output"),
            )
            events_before = count(db, "SELECT count(*) FROM events WHERE type = 'run.output'")
            cpu_before = cpu_seconds(daemon.pid)
            time.sleep(seconds)
            cpu = cpu_seconds(daemon.pid) - cpu_before
            fires = count(db, finished) - runs_before
            pieces = count(db, "SELECT count(*) FROM run_output") - pieces_before
            events = count(db, "SELECT count(*) FROM events WHERE type = 'run.output'")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
            log.close()
    return Sample(
        streaming,
        cpu * 1000 / max(fires, 1),
        fires,
        pieces / max(fires, 1),
        (events - events_before) / max(fires, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    samples: list[Sample] = []
    for round_number in range(args.rounds):
        order = [True, False] if round_number % 2 == 0 else [False, True]
        for streaming in order:
            sample = measure(streaming, args.jobs, args.lines, args.seconds)
            samples.append(sample)
            print(
                f"round {round_number + 1} streaming {'on ' if streaming else 'off'}: "
                f"{sample.cpu_ms_per_fire:.2f} ms CPU per fire over {sample.fires} fires, "
                f"{sample.pieces_per_fire:.1f} pieces and {sample.events_per_fire:.1f} "
                "run.output events per fire",
                flush=True,
            )

    def median(streaming: bool) -> float:
        return statistics.median(s.cpu_ms_per_fire for s in samples if s.streaming == streaming)

    on, off = median(True), median(False)
    print(
        f"\nmedian daemon CPU per fire: streaming on {on:.2f} ms, off {off:.2f} ms, "
        f"difference {on - off:+.2f} ms ({(on - off) / off * 100:+.0f}%) "
        f"({args.jobs} exec jobs every second, {args.lines} lines each, {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
