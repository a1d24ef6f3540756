"""The dashboard's pages rendered by a real aiohttp server over a real SQLite file: what they
show, that data is escaped, and the timeline's marks (issue 15)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from jobctl.catalog import add_job
from jobctl.listener_host import Health
from jobctl.models import JobChange
from jobctl.store import open_store
from jobctl.timeutil import to_db, utcnow
from jobctl.web import dashboard
from jobctl.web.context import WebContext

EVIL = "<script>alert(1)</script>"


@dataclass
class FakeHost:
    """The listener host the overview asks for health (no daemon in these tests)."""

    trouble: str | None = None

    def health(self) -> Health:
        return Health(time.monotonic(), utcnow(), self.trouble)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "jobctl.db"
    store = open_store(path)
    now = utcnow()
    add_job(store, JobChange(name="beat", command="true", timezone="UTC", every="1m"), now)
    add_job(
        store,
        JobChange(name="evil.job", description=EVIL, command="echo hi", timezone="UTC", every="1h"),
        now,
    )
    store.close()
    return path


def add_run(
    db: Path,
    job: str,
    status: str,
    scheduled: datetime,
    *,
    trigger: str = "schedule",
    output: str | None = None,
    details: dict[str, object] | None = None,
    duration_ms: int | None = 5,
    attempt: int = 1,
) -> int:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        (job_id,) = conn.execute("SELECT id FROM jobs WHERE name = ?", (job,)).fetchone()
        finished = None if status in ("running", "queued") else to_db(scheduled)
        cursor = conn.execute(
            "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, finished_at,"
            " duration_ms, output, details, created_at, attempt) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                job_id,
                trigger,
                status,
                to_db(scheduled),
                to_db(scheduled),
                finished,
                duration_ms if finished else None,
                output,
                json.dumps(details) if details else None,
                to_db(scheduled),
                attempt,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid
    finally:
        conn.close()


class Pages:
    """A real server with the dashboard on 127.0.0.1, fetched with a real client."""

    def __init__(self, db: Path, host: FakeHost) -> None:
        self.db = db
        self.host = host
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _start(self) -> None:
        app = web.Application()
        context = WebContext(self.db, lambda: None, self.host)  # type: ignore[arg-type]
        dashboard.install(app, context)
        app.on_cleanup.append(lambda app: _close(context))
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.loop.run_until_complete(self._start())

    def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        async def fetch() -> tuple[int, str, dict[str, str]]:
            async with (
                ClientSession() as session,
                session.get(self.url + path, allow_redirects=False) as response,
            ):
                return response.status, await response.text(), dict(response.headers)

        return self.loop.run_until_complete(fetch())

    def close(self) -> None:
        if self.runner is not None:
            self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()


async def _close(context: WebContext) -> None:
    context.close()


@pytest.fixture
def pages(db: Path) -> Iterator[Pages]:
    served = Pages(db, FakeHost())
    served.start()
    yield served
    served.close()


def test_overview_shows_health_counts_in_flight_and_next_fires(db: Path, pages: Pages) -> None:
    now = utcnow()
    add_run(db, "beat", "failed", now - timedelta(hours=1))
    add_run(db, "beat", "missed", now - timedelta(hours=2), details={"missed_count": 3})
    running = add_run(db, "beat", "running", now - timedelta(seconds=30))
    status, html, headers = pages.get("/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "running" in html and "✓" in html
    assert re.search(r'id="failed-24h">1<', html)
    assert re.search(r'id="missed-24h">3<', html)  # the slots the missed row stands for
    assert f'href="/runs/{running}"' in html
    assert "data-elapsed" in html
    assert 'href="/jobs/beat"' in html and "data-relative" in html  # next fires, counted down


def test_overview_says_when_the_database_cannot_be_written(db: Path) -> None:
    served = Pages(db, FakeHost("disk full"))
    served.start()
    try:
        assert "cannot write the database: disk full" in served.get("/")[1]
    finally:
        served.close()


def test_jobs_page_lists_and_filters(pages: Pages) -> None:
    status, html, _ = pages.get("/jobs")
    assert status == 200
    assert 'data-job="beat"' in html and 'data-job="evil.job"' in html
    assert 'data-url="/api/v1/jobs/beat/pause"' in html
    assert 'data-url="/api/v1/jobs/beat/run"' in html
    html = pages.get("/jobs?q=EVIL")[1]
    assert 'data-job="evil.job"' in html and 'data-job="beat"' not in html
    assert "No job matches" in pages.get("/jobs?state=paused")[1]


def test_job_page_escapes_its_description_and_run_output(db: Path, pages: Pages) -> None:
    run = add_run(db, "evil.job", "succeeded", utcnow(), output=f"<b>bold</b>{EVIL}")
    html = pages.get("/jobs/evil.job")[1]
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = pages.get(f"/runs/{run}")[1]
    assert "<b>bold</b>" not in html and EVIL not in html
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;" in html


def test_timeline_has_one_mark_per_slot_in_the_lane_of_its_outcome(db: Path, pages: Pages) -> None:
    now = utcnow()
    add_run(db, "beat", "succeeded", now - timedelta(hours=3))
    add_run(db, "beat", "failed", now - timedelta(hours=2))
    add_run(db, "beat", "timed_out", now - timedelta(minutes=90))
    until = (now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    add_run(
        db,
        "beat",
        "missed",
        now - timedelta(hours=1),
        details={"missed_count": 30, "missed_until": until},
    )
    add_run(db, "beat", "succeeded", now - timedelta(minutes=20), trigger="catchup")
    add_run(db, "beat", "skipped", now - timedelta(minutes=10))
    add_run(db, "beat", "running", now - timedelta(seconds=5))
    add_run(db, "beat", "failed", now - timedelta(days=3))  # only on the 7-day timeline
    html = pages.get("/jobs/beat")[1]
    day, week = re.findall(r'<figure class="timeline".*?</figure>', html, re.S)
    lanes = re.findall(r'data-lane="(\w+)"', day)
    assert sorted(lanes) == sorted(
        ["succeeded", "failed", "timed_out", "missed", "catchup", "skipped", "in_flight"]
    )
    assert re.findall(r'data-lane="(\w+)"', week).count("failed") == 2
    assert (
        "1 succeeded, 1 failed, 1 timed out, 1 skipped, 30 missed slots, 1 catch-up, 1 in flight"
        in day
    )
    # The missed row spans its slots: half an hour of a 24-hour axis of 1000 units is ~21.
    missed = re.search(r'width="([\d.]+)" height="\d+" class="mark status-missed"', day)
    assert missed is not None and 19 < float(missed.group(1)) < 23
    for label in ("succeeded", "failed", "timed out", "skipped", "missed", "catch-up"):
        assert f'class="lane-label">{label}</text>' in day  # lanes carry words, not colour only
    assert html.count('class="bar status-') == 5  # the duration chart: runs that executed


def test_history_pages_by_cursor(db: Path, pages: Pages) -> None:
    now = utcnow()
    ids = [add_run(db, "beat", "succeeded", now - timedelta(minutes=n)) for n in range(60, 0, -1)]
    html = pages.get("/jobs/beat")[1]
    cursor = re.search(r'href="/jobs/beat\?before=(\d+)" rel="next"', html)
    assert cursor is not None and int(cursor.group(1)) == ids[-50]
    older = pages.get(f"/jobs/beat?before={cursor.group(1)}")[1]
    history = older.split('id="history"')[1]
    assert f'href="/runs/{ids[0]}"' in history and f'href="/runs/{ids[-1]}"' not in history
    assert 'rel="next"' not in older


def test_fragment_is_only_the_live_part(pages: Pages) -> None:
    html = pages.get("/jobs?fragment=1")[1]
    assert "<html" not in html and 'data-job="beat"' in html


def test_unknown_job_and_run_are_404_pages(pages: Pages) -> None:
    status, html, _ = pages.get("/jobs/nope")
    assert status == 404 and "no job" in html.lower()
    assert pages.get("/runs/999")[0] == 404
    assert pages.get("/runs/abc")[0] == 404


def test_run_in_flight_shows_its_output_so_far_and_a_cancel_button(db: Path, pages: Pages) -> None:
    run = add_run(db, "beat", "running", utcnow())
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(run_output)")]
        assert columns, "the output pieces table"
        conn.execute(
            "INSERT INTO run_output (run_id, seq, stream, at, text) VALUES (?,?,?,?,?)",
            (run, 1, "stdout", to_db(utcnow()), "first <i>line</i>\n"),
        )
    finally:
        conn.close()
    html = pages.get(f"/runs/{run}")[1]
    assert "first &lt;i&gt;line&lt;/i&gt;" in html
    assert f'data-url="/api/v1/runs/{run}/cancel"' in html


def test_static_files_are_served(pages: Pages) -> None:
    status, text, _ = pages.get("/static/dashboard.js")
    assert status == 200 and "EventSource" in text
    assert "innerHTML" not in text and "insertAdjacentHTML" not in text
    assert pages.get("/static/dashboard.css")[0] == 200


def test_pages_have_no_inline_script_or_style(db: Path, pages: Pages) -> None:
    add_run(db, "beat", "failed", utcnow())
    for path in ("/", "/jobs", "/jobs/beat", "/runs/1"):
        html = pages.get(path)[1]
        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, path
        assert "<style" not in html and " style=" not in html, path


def test_timestamps_are_machine_readable(db: Path, pages: Pages) -> None:
    add_run(db, "beat", "succeeded", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    html = pages.get("/jobs/beat")[1]
    assert 'datetime="2026-01-02T03:04:05Z"' in html


def test_jobs_page_in_pages_of_a_hundred(db: Path, pages: Pages) -> None:
    store = open_store(db)
    now = utcnow()
    for number in range(120):
        change = JobChange(name=f"n{number:03d}", command="true", timezone="UTC", manual=True)
        add_job(store, change, now)
    store.close()
    html = pages.get("/jobs?q=n")[1]
    assert html.count("data-job=") == 100 and "100 of 120 jobs" in html
    after = re.search(r'href="/jobs\?state=&amp;q=n&amp;after=(n\d+)" rel="next"', html)
    assert after is not None and after.group(1) == "n099"
    html = pages.get(f"/jobs?q=n&after={after.group(1)}")[1]
    assert html.count("data-job=") == 20 and 'data-job="n100"' in html and 'rel="next"' not in html


def test_a_crowded_timeline_draws_one_mark_per_column_and_lane(db: Path, pages: Pages) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    now = utcnow()
    (job_id,) = conn.execute("SELECT id FROM jobs WHERE name = 'beat'").fetchone()
    rows = []
    for second in range(1, 1201):  # 20 minutes of a job firing every second
        at = to_db(now - timedelta(seconds=second))
        status = "failed" if second % 100 == 0 else "succeeded"
        rows.append((job_id, "schedule", status, at, at, at, 3, at))
    conn.executemany(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, finished_at,"
        " duration_ms, created_at) VALUES (?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.close()
    html = pages.get("/jobs/beat")[1]
    day = re.findall(r'<figure class="timeline".*?</figure>', html, re.S)[0]
    assert "1188 succeeded, 12 failed" in day  # the caption counts every run
    marks = re.findall(r'data-lane="(\w+)"', day)
    assert 0 < len(marks) < 40 and "failed" in marks and "succeeded" in marks
    assert re.search(r"<title>\d+ runs succeeded, the newest: run \d+</title>", day)


def test_a_failed_run_links_to_its_retry(db: Path, pages: Pages) -> None:
    slot = utcnow() - timedelta(minutes=5)
    failed = add_run(db, "beat", "failed", slot)
    retry = add_run(db, "beat", "succeeded", slot, trigger="retry", attempt=2)
    html = pages.get(f"/runs/{failed}")[1]
    assert f'next: <a href="/runs/{retry}">run {retry}</a>' in html
    assert "next:" not in pages.get(f"/runs/{retry}")[1]


def test_a_runs_request_shows_nothing_as_a_dash_not_python(db: Path, pages: Pages) -> None:
    run = add_run(db, "beat", "succeeded", utcnow())
    snapshot = {"command": "echo hi", "cwd": None, "env": {}, "shell": True}
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("UPDATE runs SET snapshot = ? WHERE id = ?", (json.dumps(snapshot), run))
    finally:
        conn.close()
    html = pages.get(f"/runs/{run}")[1]
    assert '<dt>cwd</dt><dd class="line">-</dd>' in html
    assert '<dt>env</dt><dd class="line">-</dd>' in html
    assert '<dt>shell</dt><dd class="line">yes</dd>' in html
    assert ">None<" not in html and ">True<" not in html
