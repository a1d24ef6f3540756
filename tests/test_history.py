"""Reading history: `jobctl runs`, stats in list/show, status, follow, retention."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl import engine, history, runs
from jobctl.actions import Outcome
from jobctl.paths import resolve_db_path
from jobctl.store import SqliteStore, open_store
from tests.conftest import BOTH_STORES, Invoke
from tests.realparts import ROOT, follow_beat_until_three_runs, query

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
OWNER = runs.Owner.this_process()


def fill(
    db_path: Path, jobctl: Invoke, outcomes: dict[str, list[str]], start: datetime = T0
) -> None:
    """Record runs through the daemon's own code path: claim a slot, then record outcomes."""
    for name in outcomes:
        result = jobctl(
            "add",
            name,
            "--url",
            "http://127.0.0.1:9/",
            "--every",
            "1m",
            "--tz",
            "UTC",
            "--catchup",
            "skip",
            "--overlap",
            "allow",
        )
        assert result.exit_code == 0, result.stderr
    store = open_store(resolve_db_path(None))  # the test's database, on either store
    for name in outcomes:
        query(
            db_path,
            "UPDATE jobs SET next_run_at = ? WHERE name = ?",
            start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            name,
        )
    longest = max(len(v) for v in outcomes.values())
    for minute in range(longest):
        done = [name for name, plan in outcomes.items() if len(plan) <= minute]
        for name in done:
            query(
                db_path, "UPDATE jobs SET state = 'paused', next_run_at = NULL WHERE name = ?", name
            )
        now = start + timedelta(minutes=minute, milliseconds=10)
        step = engine.claim_due(store, now, awake_since=start, owner=OWNER)
        finished = []
        for claim in step.claims:
            status = outcomes[claim.job.name][minute]
            duration = timedelta(milliseconds=100 * (minute + 1))
            finished.append(
                (
                    claim,
                    Outcome(
                        status=status,
                        started_at=now,
                        finished_at=now + duration,
                        http_status=200 if status == "succeeded" else 500,
                        error=None if status == "succeeded" else f"HTTP 500 at minute {minute}",
                        output=f"body {minute}",
                    ),
                )
            )
        engine.record_outcomes(store, finished, now)
    # Park the filled jobs' next slot far ahead so that a later fill claims only its own.
    for name in outcomes:
        query(
            db_path,
            "UPDATE jobs SET state = 'enabled', next_run_at = ? WHERE name = ?",
            "2099-01-01T00:00:00.000000Z",
            name,
        )
    store.close()


@pytest.fixture
def history_db(db_path: Path, jobctl: Invoke) -> Path:
    fill(
        db_path,
        jobctl,
        {
            "alpha": ["succeeded", "failed", "succeeded", "succeeded", "timed_out"],
            "beta": ["succeeded"] * 3,
        },
    )
    return db_path


@BOTH_STORES
def test_runs_lists_newest_first_with_filters(history_db: Path, jobctl: Invoke) -> None:
    listed = json.loads(jobctl("runs", "--json", "--limit", "0").stdout)
    assert [r["id"] for r in listed] == sorted((r["id"] for r in listed), reverse=True)
    assert len(listed) == 8
    alpha = json.loads(jobctl("runs", "alpha", "--json").stdout)
    assert [r["status"] for r in alpha] == [
        "timed_out",
        "succeeded",
        "succeeded",
        "failed",
        "succeeded",
    ]
    failed = json.loads(
        jobctl("runs", "--status", "failed", "--status", "timed_out", "--json").stdout
    )
    assert {r["status"] for r in failed} == {"failed", "timed_out"} and len(failed) == 2
    running = jobctl("runs", "--status", "running", "--json")  # one status: its own index
    assert running.exit_code == 0 and json.loads(running.stdout) == [], running.stderr
    assert len(json.loads(jobctl("runs", "--limit", "3", "--json").stdout)) == 3
    assert json.loads(jobctl("runs", "--trigger", "manual", "--json").stdout) == []
    assert len(json.loads(jobctl("runs", "beta", "--limit", "2", "--json").stdout)) == 2
    since = json.loads(jobctl("runs", "--since", "2026-06-01T12:03:00Z", "--json").stdout)
    assert {r["scheduled_for"] for r in since} == {"2026-06-01T12:03:00Z", "2026-06-01T12:04:00Z"}
    until = json.loads(jobctl("runs", "alpha", "--until", "2026-06-01T12:01:30Z", "--json").stdout)
    assert [r["scheduled_for"] for r in until] == ["2026-06-01T12:01:00Z", "2026-06-01T12:00:00Z"]


def test_runs_options_may_follow_the_job_name(history_db: Path, jobctl: Invoke) -> None:
    first = jobctl("runs", "alpha", "--limit", "2", "--json").stdout
    second = jobctl("runs", "--limit", "2", "alpha", "--json").stdout
    assert first == second and len(json.loads(first)) == 2


@BOTH_STORES
def test_runs_formats(history_db: Path, jobctl: Invoke) -> None:
    lines = jobctl("runs", "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 8 and all(json.loads(line)["job"] in ("alpha", "beta") for line in lines)
    table = jobctl("runs", "alpha").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "JOB", "TRIGGER"]
    assert "timed_out" in table[1] and "HTTP 500 at minute 4" in table[1]
    parsed = list(csv.DictReader(io.StringIO(jobctl("runs", "--format", "csv").stdout)))
    assert len(parsed) == 8 and parsed[0]["job"] in ("alpha", "beta")
    assert set(parsed[0]) >= {"id", "status", "duration_ms", "http_status"}


@BOTH_STORES
def test_runs_show_has_everything(history_db: Path, jobctl: Invoke) -> None:
    run_id = json.loads(jobctl("runs", "alpha", "--status", "failed", "--json").stdout)[0]["id"]
    data = json.loads(jobctl("runs", "show", str(run_id), "--json").stdout)
    assert data["status"] == "failed" and data["output"] == "body 1"
    assert data["lateness_ms"] == 10 and data["duration_ms"] == 200
    text = jobctl("runs", "show", str(run_id)).stdout
    assert "HTTP 500 at minute 1" in text and "lateness:" in text and "body 1" in text
    missing = jobctl("runs", "show", "99999")
    assert missing.exit_code == 3 and "no run" in missing.stderr


@BOTH_STORES
def test_stats_in_list_and_show(history_db: Path, jobctl: Invoke) -> None:
    alpha = json.loads(jobctl("show", "alpha", "--json").stdout)
    assert (alpha["runs_total"], alpha["runs_succeeded"], alpha["runs_failed"]) == (5, 3, 2)
    assert alpha["success_rate"] == 0.6
    assert alpha["avg_duration_ms"] == 300  # 100..500 ms
    assert alpha["p95_duration_ms"] == 500
    assert alpha["recent"] == ["succeeded", "failed", "succeeded", "succeeded", "timed_out"]
    assert alpha["last_status"] == "timed_out"
    assert alpha["last_success_at"] == "2026-06-01T12:03:00.010Z"
    listed = {j["name"]: j for j in json.loads(jobctl("list", "--json").stdout)}
    assert listed["beta"]["success_rate"] == 1.0
    stats = ("success_rate", "avg_duration_ms", "p95_duration_ms", "recent")
    assert [listed["alpha"][key] for key in stats] == [alpha[key] for key in stats]
    table = jobctl("list").stdout
    assert "60%" in table and ("✓✗✓✓✗" in table or "+x++x" in table)


@BOTH_STORES
def test_status_json_has_the_contract_fields(history_db: Path, jobctl: Invoke) -> None:
    data = json.loads(jobctl("status", "--json").stdout)
    assert data["daemon"]["running"] is False
    assert data["jobs"] == {"enabled": 2, "paused": 0, "completed": 0}
    assert set(data) >= {"daemon", "jobs", "failed_24h", "missed_24h", "upcoming"}
    assert set(data["daemon"]) >= {"running", "pid", "host", "started_at", "last_tick_at"}
    assert len(data["upcoming"]) == 5
    assert jobctl("status").exit_code == 0
    assert jobctl("status", "--check").exit_code == 4


@BOTH_STORES
def test_status_counts_recent_failures_and_missed_slots(db_path: Path, jobctl: Invoke) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    jobctl("add", "gap", "--exec", "true", "--every", "1m", "--catchup", "skip")
    slot = (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    query(db_path, "UPDATE jobs SET next_run_at = ?", slot)
    store = open_store(resolve_db_path(None))
    engine.claim_due(store, now, awake_since=now, owner=OWNER)
    store.close()
    data = json.loads(jobctl("status", "--json").stdout)
    assert data["missed_24h"] == 10
    assert json.loads(jobctl("show", "gap", "--json").stdout)["runs_missed"] == 10


@BOTH_STORES
def test_prune_keeps_exactly_what_it_should(history_db: Path, jobctl: Invoke) -> None:
    result = jobctl("runs", "prune", "alpha", "--keep", "2", "--json")
    assert json.loads(result.stdout) == {"removed": 3}
    alpha = json.loads(jobctl("runs", "alpha", "--json").stdout)
    assert [r["scheduled_for"][11:16] for r in alpha] == ["12:04", "12:03"]
    assert len(json.loads(jobctl("runs", "beta", "--json").stdout)) == 3
    show = json.loads(jobctl("show", "alpha", "--json").stdout)
    assert show["runs_total"] == 5  # lifetime counters are not lowered


def test_prune_by_age_and_by_job_policy(history_db: Path, jobctl: Invoke) -> None:
    removed = json.loads(jobctl("runs", "prune", "--older-than", "1d", "--json").stdout)
    assert removed == {"removed": 8}  # every run is from June
    fill(history_db, jobctl, {"gamma": ["succeeded"] * 6})
    jobctl("edit", "gamma", "--keep", "4")
    assert json.loads(jobctl("runs", "prune", "--json").stdout) == {"removed": 2}
    assert len(json.loads(jobctl("runs", "gamma", "--json").stdout)) == 4


def test_prune_never_removes_runs_in_flight(db_path: Path) -> None:
    store = open_store(db_path)
    conn = store.conn
    from jobctl.catalog import add_job
    from jobctl.models import JobChange

    change = JobChange(name="j", command="true", every="1m", policies={"overlap": "allow"})
    add_job(SqliteStore(conn), change, T0)
    conn.execute("UPDATE jobs SET next_run_at = ?", ("2026-06-01T12:01:00.000000Z",))
    step = engine.claim_due(
        SqliteStore(conn), T0 + timedelta(minutes=3), awake_since=T0, owner=OWNER
    )
    assert len(step.claims) == 3
    assert sum(history.prune_runs(store, T0, job="j", keep=0)) == 0


def test_clear_needs_confirmation_without_a_terminal(history_db: Path, jobctl: Invoke) -> None:
    result = jobctl("runs", "clear", "alpha")
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert len(json.loads(jobctl("runs", "alpha", "--json").stdout)) == 5
    assert jobctl("runs", "clear", "alpha", "--yes").exit_code == 0
    assert json.loads(jobctl("runs", "alpha", "--json").stdout) == []
    assert json.loads(jobctl("show", "alpha", "--json").stdout)["runs_total"] == 0


def test_reserved_names_and_bad_filters(history_db: Path, jobctl: Invoke) -> None:
    assert jobctl("runs", "--status", "exploded").exit_code == 2
    assert jobctl("runs", "--since", "last tuesday").exit_code == 2
    assert jobctl("runs", "nope").exit_code == 3


def test_closed_pipe_prints_no_traceback(history_db: Path) -> None:
    env = {**os.environ, "JOBCTL_DB": str(history_db)}
    result = subprocess.run(
        f"{sys.executable} -m jobctl runs --limit 0 --format jsonl | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_follow_shows_runs_the_daemon_starts(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "beat", "--exec", "echo beat", "--every", "1s")
    out = follow_beat_until_three_runs(db_path, "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["job"] for e in events} == {"beat"}
    assert any(e["status"] == "succeeded" for e in events)


def test_the_strip_has_a_symbol_for_every_status() -> None:
    from jobctl.history import JobStats
    from jobctl.runs import STATUSES

    stats = JobStats(recent=list(STATUSES))
    assert "?" not in stats.strip() and "?" not in stats.strip(unicode=False)
    assert JobStats(recent=["succeeded", "cancelled"]).strip() == "✓⊘"


@BOTH_STORES
def test_finished_counts_of_a_window_count_each_status_once(history_db: Path) -> None:
    # Succeeded runs are not in the (status, id) index: they are counted as the finished
    # runs of the window less the others; every other status from it.
    store = open_store(resolve_db_path(None))
    try:
        whole = history.finished_since(store, T0 - timedelta(minutes=1))
        late = history.finished_since(store, T0 + timedelta(minutes=2))
    finally:
        store.close()
    assert {k: v for k, v in whole.counts.items() if v} == {
        "succeeded": 6,
        "failed": 1,
        "timed_out": 1,
    }
    assert whole.failures == {1: 2}
    assert {k: v for k, v in late.counts.items() if v} == {"succeeded": 3, "timed_out": 1}
