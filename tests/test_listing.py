"""`jobctl list`'s table read in one statement (SQLite) is the table the models give."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl import runs
from jobctl.catalog import list_jobs
from jobctl.cli.job_views import listed_from_models
from jobctl.history import jobs_stats
from jobctl.listing import STRIP_LENGTH, listed_from_rows
from jobctl.store import open_store
from jobctl.store.sqlite.listing import JobList, open_job_list
from tests.conftest import Invoke
from tests.realparts import query

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
STATUSES = (
    "succeeded",
    "failed",
    "timed_out",
    "interrupted",
    "skipped",
    "missed",
    "cancelled",
    "queued",
    "waiting",
    "succeeded",
    "failed",
    "succeeded",
)


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _add_run(db: Path, job: str, status: str, at: datetime, pid: int | None = None) -> None:
    query(
        db,
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, created_at, "
        "owner_pid, owner_host) SELECT id, 'manual', ?, ?, ?, ?, ?, ? FROM jobs WHERE name = ?",
        status,
        _text(at),
        _text(at),
        _text(at),
        pid,
        runs.HOST if pid else None,
        job,
    )


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def varied(db_path: Path, jobctl: Invoke) -> Path:
    """Jobs of every action, trigger and state, with runs of every status, one of them in
    flight and one whose owner is gone."""
    for args in (
        ("web", "--url", "https://me:pw@example.com/hook?token=abc&x=1", "--cron", "*/5 * * * *"),
        ("post", "--url", "https://example.com/in", "--body", "hi", "--every", "15m", "--offset", "5m"),
        ("put", "--url", "https://example.com/p", "--method", "PUT", "--at", "2030-01-01 09:00", "--tz", "Europe/Berlin"),
        ("script", "--exec", "backup.sh --all", "--manual"),
        ("ask", "--agent", "helper", "--prompt", "  summarise\n the   day, all of it, in three short lines  ", "--every", "1h"),
        ("quiet", "--exec", "true", "--every", "1d"),
    ):  # fmt: skip
        if args[0] == "ask":
            assert jobctl("agent", "add", "helper", "--command", "cat").exit_code == 0
        result = jobctl("add", *args)
        assert result.exit_code == 0, result.stderr
    jobctl("pause", "script")
    query(db_path, "UPDATE jobs SET paused_reason = '3 failures' WHERE name = 'script'")
    query(db_path, "UPDATE jobs SET state = 'completed', next_run_at = NULL WHERE name = 'put'")
    # No method stored: GET, or POST with a body, as the models read it.
    query(db_path, "UPDATE jobs SET spec = json_remove(spec, '$.method') WHERE name = 'post'")
    query(
        db_path,
        "UPDATE jobs SET runs_total = 7, runs_succeeded = 3, last_status = 'failed', "
        "last_run_at = ?, next_run_at = ? WHERE name = 'web'",
        _text(NOW - timedelta(hours=3)),
        _text(NOW + timedelta(minutes=4)),
    )
    query(db_path, "UPDATE jobs SET runs_total = 3, runs_succeeded = 2 WHERE name = 'post'")
    for minutes, status in enumerate(STATUSES):
        _add_run(db_path, "web", status, NOW - timedelta(minutes=200 - minutes))
    _add_run(db_path, "post", "succeeded", NOW - timedelta(minutes=90))
    # Started after this process (else its pid would be taken for another's, reused).
    _add_run(db_path, "post", "running", datetime.now(UTC), pid=os.getpid())
    _add_run(db_path, "ask", "running", NOW - timedelta(minutes=30), pid=_dead_pid())
    return db_path


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("columns", ["", "70"])
def test_the_table_read_in_one_statement_is_the_models_table(
    varied: Path, jobctl: Invoke, monkeypatch: pytest.MonkeyPatch, colour: bool, columns: str
) -> None:
    monkeypatch.setattr("jobctl.cli.job_views.current_time", lambda: NOW)
    monkeypatch.setattr("jobctl.output.use_colour", lambda stream=None: colour)
    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    fast = jobctl("list")
    assert fast.exit_code == 0, fast.stderr
    lines = {line.split()[0]: line for line in fast.stdout.splitlines() if line.strip()}
    assert "interrupted" in lines["ask"]  # the dead owner's run, marked first
    assert "in flight:" in fast.stdout  # and the live one follows the table
    monkeypatch.setattr("jobctl.cli.job_views.read_listing", lambda ctx: None)
    assert jobctl("list").stdout == fast.stdout


def test_listed_jobs_from_the_row_are_those_from_the_models(varied: Path) -> None:
    store = open_store(varied)
    try:
        jobs = list_jobs(store)
        from_models = listed_from_models(jobs, jobs_stats(store, jobs, STRIP_LENGTH))
        rows = JobList(store.conn, writable=True).rows(STRIP_LENGTH)  # type: ignore[attr-defined]
        from_rows = listed_from_rows(rows)
    finally:
        store.close()
    assert from_rows == from_models
    web = next(job for job in from_rows if job.name == "web")
    assert web.recent == list(STATUSES[-STRIP_LENGTH:])
    assert web.action == "GET https://me:***@example.com/hook?token=***&x=1"
    assert next(job for job in from_rows if job.name == "post").action.startswith("POST ")


def test_whether_a_run_is_in_flight_is_read_from_the_running_runs_index(
    db_path: Path, jobctl: Invoke
) -> None:
    """`list` asks whether any run is in flight before it reads the table: an index of the
    running rows answers, not a walk of the whole history (220 ms on 5 million runs)."""
    assert jobctl("add", "quiet", "--exec", "true", "--every", "1d").exit_code == 0
    for minutes in range(30):
        _add_run(db_path, "quiet", "succeeded", NOW - timedelta(minutes=minutes))
    listing = open_job_list(db_path)
    asked: list[str] = []
    listing.conn.set_trace_callback(asked.append)
    assert not listing.has_running_runs()
    listing.conn.set_trace_callback(None)
    (statement,) = asked
    plan = " ".join(row[3] for row in listing.conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
    assert "INDEX runs_running" in plan, plan
    _add_run(db_path, "quiet", "running", NOW, pid=os.getpid())
    assert listing.has_running_runs()
    listing.close()
