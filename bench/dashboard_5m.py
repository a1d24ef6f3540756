"""The dashboard's pages on a big history: 1,000 jobs, 5,000,000 runs (bench/history.py's
database, cached with bench/api_5m.py's parameters so that one build serves both).

    python bench/dashboard_5m.py              # build once (cached), then time the pages
    python bench/dashboard_5m.py --reps 50

Target: every page (and its live part, `?fragment=1`, which the page fetches on each event)
under 200 ms, median and p95, as a client sees it: real HTTP requests (keep-alive) with the
API token to the web side (jobctl.web.app.install: the token middleware, the pages) served
by aiohttp on 127.0.0.1 in this process, with the store connection of its own the daemon
gives the web side. No daemon loop runs beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import sqlite3
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import history

from jobctl.listener_host import Health

DEFAULT_DB = Path("/tmp/jobctl-bench-api.db")
TARGET_MS = 200.0
TOKEN = "bench-token"


class QuietHost:
    """The listener's host: the overview asks it how the loop is doing."""

    def health(self) -> Health:
        return Health(time.monotonic(), datetime.now(UTC), None)


def serve(db: Path) -> str:
    """The web side on 127.0.0.1:0 in a thread of its own; its address."""
    from aiohttp import web

    from jobctl.web.app import install
    from jobctl.web.context import WebContext

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    bound: list[str] = []

    async def start() -> None:
        app = web.Application()
        install(app, WebContext(db, wake=lambda: None, host=QuietHost()))  # type: ignore[arg-type]
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        bound.append(f"127.0.0.1:{runner.addresses[0][1]}")
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(60)
    return bound[0]


def targets(db: Path) -> tuple[str, str, int, int]:
    """The busiest job, a quiet one, the newest run, and a cursor deep in the busy job's
    history."""
    conn = sqlite3.connect(db)
    busy_id, busy = conn.execute(
        "SELECT id, name FROM jobs ORDER BY runs_total DESC, name LIMIT 1"
    ).fetchone()
    quiet = conn.execute(
        "SELECT name FROM jobs WHERE trigger = 'cron' ORDER BY runs_total, name LIMIT 1"
    ).fetchone()[0]
    newest = conn.execute("SELECT max(id) FROM runs").fetchone()[0]
    busy_low = conn.execute("SELECT min(id) FROM runs WHERE job_id = ?", (busy_id,)).fetchone()[0]
    conn.close()
    return busy, quiet, newest, busy_low + 100


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
    sizes: dict[str, int] = {}
    for round_ in range(reps + 2):  # two warm-up rounds, then round-robin
        for label, path in paths:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            took = (time.perf_counter() - started) * 1000
            assert response.status == 200, (path, response.status, body[:200])
            if round_ >= 2:
                samples[label].append(took)
            sizes[label] = len(body)
    print(f"\n{'page':<52} {'median':>8} {'p95':>8}  {'bytes':>8}")
    misses = []
    for label, path in paths:
        values = sorted(samples[label])
        median = statistics.median(values)
        p95 = values[min(len(values) - 1, round(0.95 * len(values)) - 1)]
        mark = "" if p95 < TARGET_MS else "  MISS"
        if mark:
            misses.append(label)
        print(f"{label:<52} {median:7.1f}ms {p95:7.1f}ms  {sizes[label]:>8}{mark}")
        print(f"    GET {path}")
    print(f"\ntarget {TARGET_MS:.0f} ms: " + (", ".join(f"MISS {m}" for m in misses) or "all hold"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="the cached database")
    parser.add_argument("--rebuild", action="store_true", help="build the database again")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reps", type=int, default=20, help="timed requests per page")
    args = parser.parse_args()
    meta = history.ensure_db(args)
    print(f"database: {meta['rows']:,} runs, {meta['jobs']} jobs, {meta.get('size_mb')} MB")
    set_token(args.db)  # also migrates a database built by an older jobctl
    busy, quiet, newest, busy_deep = targets(args.db)
    address = serve(args.db)
    paths = [
        ("overview", "/"),
        ("overview, live part", "/?fragment=1"),
        ("jobs (first 100 of 1,000)", "/jobs"),
        ("jobs, live part", "/jobs?fragment=1"),
        ("jobs?state=paused", "/jobs?state=paused"),
        ("jobs?q=a (name filter)", "/jobs?q=a"),
        (f"job {busy} (busiest: timelines, durations, history)", f"/jobs/{busy}"),
        (f"job {busy}, live part", f"/jobs/{busy}?fragment=1"),
        (f"job {busy}, a deep history page", f"/jobs/{busy}?before={busy_deep}"),
        (f"job {quiet} (quiet)", f"/jobs/{quiet}"),
        ("run (newest)", f"/runs/{newest}"),
        ("run (deep in the history)", f"/runs/{busy_deep}"),
    ]
    time_requests(address, paths, args.reps)


if __name__ == "__main__":
    main()
