"""Fleet benchmark: the highest sustained rate 1, 2 and 3 daemons on one PostgreSQL database
hold (p99 lateness under 100 ms, nothing missed or fired twice, every fire recorded), beside
the SQLite daemon on the same machine.

    python bench/fleet.py                      # daemons 1,2,3 on PG and SQLite, default steps
    python bench/fleet.py --daemons 1,3 --steps 250,500,1000 --seconds 15
    python bench/fleet.py --server postgresql://postgres@127.0.0.1:5432/postgres
    python bench/fleet.py --daemons 1,3 --steps 250,500,1000 --every-step  # loaded machine

The workload is daemon_bench's `sustained` one (N jobs every second, their phases spread over
the second), measured the same way: a sink process records each request's arrival and
X-Jobctl-* headers; lateness is arrival minus the slot. Each step gets a fresh throwaway
database (`jobctl_bench_<random>`, dropped after). CPU is the sum over the daemons; RSS the
largest daemon's.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemon_bench as bench

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_STEPS = (250, 500, 750, 1000, 1500, 2000, 3000)


def database_url(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path="/" + name))


def admin(server: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql)


def live_daemons(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            rows = conn.execute("SELECT pid FROM daemons WHERE stopped_at IS NULL").fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    return [row[0] for row in rows]


def pg_rows(url: str) -> list[bench.RecordedRow]:
    """daemon_bench's `jobctl_rows` on PostgreSQL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return bench.recorded_rows(conn.execute(bench.RUN_ROWS))


def run_pg(
    workload: bench.Workload, daemons: int, server: str, options: bench.Options, workdir: Path
) -> bench.Run:
    name = f"jobctl_bench_{secrets.token_hex(4)}"
    admin(server, f'CREATE DATABASE "{name}"')
    url = database_url(server, name)
    sink = bench.Sink(workdir)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        doc_path = workdir / "jobs.json"
        doc_path.write_text(json.dumps(bench.jobctl_document(workload, sink.url)))
        began = time.time()
        subprocess.run(
            [bench.PYTHON, "-m", "jobctl", "--db", url, "apply", "-f", str(doc_path), "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        setup = time.time() - began
        log = workdir / "daemons.log"
        spawned = time.time()
        with open(log, "w") as stderr:
            for _ in range(daemons):
                procs.append(
                    subprocess.Popen(
                        [
                            bench.PYTHON,
                            "-m",
                            "jobctl",
                            "daemon",
                            "--db",
                            url,
                            "--log-level",
                            "warning",
                            "--grace",
                            "5s",
                        ],
                        stderr=stderr,
                        stdout=subprocess.DEVNULL,
                    )
                )
        deadline = time.time() + 60
        while len(live_daemons(url)) < daemons:
            if any(proc.poll() is not None for proc in procs) or time.time() > deadline:
                raise bench.stopped_early(procs[0], log)
            time.sleep(0.01)
        ready_at = time.time()
        start = ready_at + options.warmup
        end = start + workload.seconds
        bench.sleep_until(start)
        cpu0 = sum(bench.cpu_seconds(proc.pid) for proc in procs)
        sink0 = sink.cpu()
        bench.sleep_until(end)
        cpu1 = sum(bench.cpu_seconds(proc.pid) for proc in procs)
        sink1 = sink.cpu()
        bench.sleep_until(end + options.drain)
        rss = max(bench.peak_rss_mb(proc.pid) for proc in procs)
        codes = []
        for proc in procs:
            proc.send_signal(15)
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(None)
        records = sink.stop()
        rows = pg_rows(url)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if sink.proc.poll() is None:
            sink.proc.kill()
        admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    notes = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return bench.Run(
        f"pg x{daemons}",
        workload,
        setup,
        ready_at - spawned,
        (start, end),
        cpu1 - cpu0,
        sink1 - sink0,
        rss,
        records,
        rows,
        next((code for code in codes if code not in (0, -15)), 0),
        [f"daemon logs: {len(notes)} lines, e.g. {notes[-1][:160]!r}"] if notes else [],
    )


def step(kind: str, n: int, seconds: float, server: str, options: bench.Options) -> bench.Metrics:
    workload = bench.Workload("sustained", n, seconds)
    with tempfile.TemporaryDirectory(prefix="jobctl-fleet-bench-") as tmp:
        if kind == "sqlite":
            run = bench.run_jobctl(workload, options, Path(tmp))
            run.scheduler = "sqlite"
        else:
            run = run_pg(workload, int(kind), server, options, Path(tmp))
    return bench.analyse(run)


def ramp(
    kind: str,
    steps: Sequence[int],
    seconds: float,
    server: str,
    options: bench.Options,
    *,
    every_step: bool = False,
) -> str:
    held: int | None = None
    label = "SQLite, 1 daemon" if kind == "sqlite" else f"PostgreSQL, {kind} daemon(s)"
    for n in steps:
        metrics = step(kind, n, seconds, server, options)
        print(
            f"  {label:<26} N={n:>6,}  p50 {bench.fmt(metrics.late_p50):>7} ms  "
            f"p99 {bench.fmt(metrics.late_p99):>8} ms  missed {metrics.missed:>5,}  "
            f"dup {metrics.duplicates}  unrecorded {metrics.not_recorded}  "
            f"CPU {bench.fmt(metrics.cpu_pct)}%  {'PASS' if metrics.passed else 'FAIL'}",
            flush=True,
        )
        if not metrics.passed:
            for note in metrics.notes:
                print(f"    note: {note}")
            if every_step:
                continue
            break
        held = n
    return f"{label:<26} highest rate held: {f'{held:,} fires/s' if held else 'none'}"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--daemons", default="1,2,3", help="daemon counts on PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite baseline")
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)))
    parser.add_argument("--seconds", type=float, default=15.0, help="window per step")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--drain", type=float, default=2.0)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument(
        "--every-step",
        action="store_true",
        help="go on after a failing step (to compare trees on a loaded machine)",
    )
    args = parser.parse_args(argv)
    options = bench.Options(warmup=args.warmup, drain=args.drain)
    steps = [int(value) for value in args.steps.split(",")]
    kinds = ([] if args.no_sqlite else ["sqlite"]) + args.daemons.split(",")
    summary = [
        ramp(kind, steps, args.seconds, args.server, options, every_step=args.every_step)
        for kind in kinds
    ]
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
