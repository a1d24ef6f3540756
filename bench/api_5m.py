"""The REST API on a big history: 1,000 jobs, 5,000,000 runs (bench/history.py's database).

    python bench/api_5m.py                 # build once (cached), then time the API
    python bench/api_5m.py --rebuild       # build the database again (a few minutes)
    python bench/api_5m.py --reps 50

Target: every request under 200 ms (median and p95), measured as a client sees it: real
HTTP requests (keep-alive) to the web side's routes (jobctl.web.app.install: the token
middleware, the API) served by aiohttp on 127.0.0.1 in a child process, with the store
connection of its own the daemon gives the web side. No daemon loop runs beside it, so
that 1,000 jobs firing at made-up URLs neither load the machine nor change the database.

The database is built by bench/history.py's `build` (jobs with `jobctl apply`, runs
inserted straight into the schema in big transactions) and cached in
/tmp/jobctl-bench-api.db with a .json note of how it was built.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import history

DEFAULT_DB = Path("/tmp/jobctl-bench-api.db")
TARGET_MS = 200.0
TOKEN = "bench-token"
JOBS_LABEL = "jobs (1,000 with stats)"


class NoHost:
    """The listener's host, which the API routes do not use."""


def serve(db: Path) -> None:
    """The web side on 127.0.0.1:0 (this is the child process): prints its address."""
    from aiohttp import web

    from jobctl.web.app import install
    from jobctl.web.context import WebContext

    async def start() -> None:
        app = web.Application()
        install(app, WebContext(db, wake=lambda: None, host=NoHost()))  # type: ignore[arg-type]
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(start())


def start_server(db: Path) -> tuple[str, subprocess.Popen[str]]:
    """The server in a process of its own, as the daemon is: the client's work here does not
    compete with it for the interpreter."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--db", str(db)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    return child.stdout.readline().strip(), child


def targets(db: Path) -> tuple[str, str, int, int]:
    """The busiest job, a quiet one, and a cursor deep in the history (near the oldest
    runs) and one deep in the busy job's history."""
    conn = sqlite3.connect(db)
    busy_id, busy = conn.execute(
        "SELECT id, name FROM jobs ORDER BY runs_total DESC, name LIMIT 1"
    ).fetchone()
    quiet = conn.execute(
        "SELECT name FROM jobs WHERE trigger = 'cron' ORDER BY runs_total, name LIMIT 1"
    ).fetchone()[0]
    low, high = conn.execute("SELECT min(id), max(id) FROM runs").fetchone()
    deep = low + (high - low) // 50  # 98% of the way down: ~4.9 million runs newer
    busy_low = conn.execute("SELECT min(id) FROM runs WHERE job_id = ?", (busy_id,)).fetchone()[0]
    conn.close()
    return busy, quiet, deep, busy_low + 100


def set_token(db: Path) -> None:
    from jobctl.store import open_store

    store = open_store(db)
    try:
        store.set_setting("api_token", TOKEN)
    finally:
        store.close()


def time_requests(address: str, paths: list[tuple[str, str]], reps: int) -> None:
    conn = http.client.HTTPConnection(address, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    samples: dict[str, list[float]] = {label: [] for label, _ in paths}
    sizes: dict[str, tuple[int, int]] = {}
    first: dict[str, float] = {}
    for round_ in range(reps + 2):  # two warm-up rounds, then round-robin
        for label, path in paths:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            took = (time.perf_counter() - started) * 1000
            assert response.status == 200, (path, response.status, body[:200])
            first.setdefault(label, took)
            if round_ >= 2:
                samples[label].append(took)
            sizes[label] = (len(body), body.count(b"\n  {"))
    print(f"\n{'request':<58} {'median':>8} {'p95':>8}  {'bytes':>8}")
    misses = []
    for label, path in paths:
        values = sorted(samples[label])
        median = statistics.median(values)
        p95 = values[min(len(values) - 1, round(0.95 * len(values)) - 1)]
        mark = "" if p95 < TARGET_MS else "  MISS"
        if mark:
            misses.append(label)
        print(f"{label:<58} {median:7.1f}ms {p95:7.1f}ms  {sizes[label][0]:>8}{mark}")
        print(f"    GET {path}")
    cold = first[JOBS_LABEL]
    print(f"\nGET /api/v1/jobs, the first request (entries built, none cached): {cold:.1f}ms")
    print(f"\ntarget {TARGET_MS:.0f} ms: " + (", ".join(f"MISS {m}" for m in misses) or "all hold"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="the cached database")
    parser.add_argument("--rebuild", action="store_true", help="build the database again")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reps", type=int, default=20, help="timed requests per path")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.db)
        return
    meta = history.ensure_db(args)
    print(f"database: {meta['rows']:,} runs, {meta['jobs']} jobs, {meta.get('size_mb')} MB")
    set_token(args.db)  # also migrates a database built by an older jobctl
    busy, quiet, deep, busy_deep = targets(args.db)
    address, server = start_server(args.db)
    api = "/api/v1"
    paths = [
        (JOBS_LABEL, f"{api}/jobs"),
        ("runs: first page (50)", f"{api}/runs"),
        ("runs: first page, limit 1000", f"{api}/runs?limit=1000"),
        ("runs: a deep cursor page (~4.9M newer)", f"{api}/runs?before={deep}"),
        (f"runs: job {busy}", f"{api}/runs?job={busy}"),
        (f"runs: job {busy}, status failed", f"{api}/runs?job={busy}&status=failed"),
        (f"runs: job {busy}, deep cursor", f"{api}/runs?job={busy}&before={busy_deep}"),
        (f"runs: job {quiet}, status failed", f"{api}/runs?job={quiet}&status=failed"),
        ("runs: status failed", f"{api}/runs?status=failed"),
        ("runs: status failed,timed_out", f"{api}/runs?status=failed,timed_out"),
        ("runs: status interrupted (rare)", f"{api}/runs?status=interrupted"),
        ("runs: status failed, deep cursor", f"{api}/runs?status=failed&before={deep}"),
        ("runs: trigger manual", f"{api}/runs?trigger=manual"),
        (f"jobs/{busy}/runs", f"{api}/jobs/{busy}/runs"),
        ("jobs?state=paused", f"{api}/jobs?state=paused"),
        (f"jobs/{busy}", f"{api}/jobs/{busy}"),
        (f"jobs/{quiet}", f"{api}/jobs/{quiet}"),
        ("status", f"{api}/status"),
    ]
    try:
        time_requests(address, paths, args.reps)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
