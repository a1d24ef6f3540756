"""What people read: tables that fit the terminal, `runs` help and completion, `status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl import engine
from jobctl.actions import Outcome
from jobctl.output import Column, display_width, fit_widths, table
from jobctl.store import SqliteStore
from jobctl.store import sqlite as db
from tests.conftest import Invoke
from tests.realparts import ROOT, follow_beat_until_three_runs
from tests.test_history import OWNER, fill

LONG_URL = "https://example.com/" + "/".join(f"segment{i}" for i in range(20)) + "?page=2"
LONG_ERROR = "connection refused by upstream " + "x" * 150 + " END"


def widest(text: str) -> int:
    return max(display_width(line) for line in text.splitlines())


@pytest.fixture
def long_rows(db_path: Path, jobctl: Invoke) -> Path:
    """Two jobs with long actions, runs with a long error."""
    fill(db_path, jobctl, {"nightly-backup": ["succeeded", "failed", "failed"]})
    assert jobctl("edit", "nightly-backup", "--url", LONG_URL).exit_code == 0
    conn = db.connect(db_path)
    conn.execute("UPDATE runs SET error = ? WHERE status = 'failed'", (LONG_ERROR,))
    conn.close()
    assert jobctl("add", "b", "--url", LONG_URL, "--every", "5m").exit_code == 0
    return db_path


# ------------------------------------------------------------------- fitting a terminal


def test_list_fits_80_columns_and_keeps_names_whole(
    long_rows: Path, jobctl: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = jobctl("list").stdout  # not a terminal, no COLUMNS: everything
    assert LONG_URL in whole and widest(whole) > 80

    monkeypatch.setenv("COLUMNS", "80")
    fitted = jobctl("list").stdout
    assert widest(fitted) <= 80, fitted
    lines = fitted.splitlines()
    assert lines[0].split()[:4] == ["NAME", "STATE", "SCHEDULE", "ACTION"]
    assert [line.split()[0] for line in lines[1:]] == ["b", "nightly-backup"]
    assert "GET https://example.com/s" in fitted and "…" in fitted
    assert LONG_URL not in fitted

    wide = jobctl("list", "--wide").stdout
    assert LONG_URL in wide and wide == whole


def test_runs_fits_80_columns_cutting_the_error(
    long_rows: Path, jobctl: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = jobctl("runs").stdout
    assert LONG_ERROR in whole  # no 60-character cap any more when nothing needs fitting

    monkeypatch.setenv("COLUMNS", "80")
    fitted = jobctl("runs").stdout
    assert widest(fitted) <= 80, fitted
    ids = [row["id"] for row in json.loads(jobctl("runs", "--json").stdout)]
    body = fitted.splitlines()[1:]
    assert [int(line.split()[0]) for line in body] == ids
    assert all("nightly-backup" in line for line in body)
    assert "connection refused by" in fitted and LONG_ERROR not in fitted
    assert jobctl("runs", "--wide").stdout == whole

    monkeypatch.setenv("COLUMNS", "200")
    roomy = jobctl("runs").stdout
    assert "TRIGGER" in roomy and "STARTED" in roomy and widest(roomy) <= 200


def test_show_wraps_long_values_within_the_width(
    long_rows: Path, jobctl: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = jobctl("show", "b").stdout
    policies = next(line for line in whole.splitlines() if line.startswith("policies:"))
    assert len(policies) > 80

    monkeypatch.setenv("COLUMNS", "80")
    fitted = jobctl("show", "b").stdout
    assert widest(fitted) <= 80, fitted
    lines = fitted.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("policies:"))
    indent = lines[start].index(lines[start].split(":", 1)[1].strip())
    continuation = lines[start + 1]
    assert continuation.startswith(" " * indent) and not continuation[indent].isspace()
    # Every policy is still there, whole, across the lines.
    joined = " ".join(line.strip() for line in lines[start : start + 4])
    for item in policies.removeprefix("policies:").strip().split(", "):
        assert item in joined
    assert jobctl("show", "b", "--wide").stdout == whole


def test_runs_show_wraps_the_request_and_names_the_shell(
    db_path: Path, jobctl: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://127.0.0.1:9/" + "/".join(f"segment{i}" for i in range(20))
    command = "echo " + " ".join(f"word{i}" for i in range(30))
    assert jobctl("add", "h", "--url", url, "--manual").exit_code == 0
    assert jobctl("add", "x", "--exec", command, "--manual").exit_code == 0
    jobctl("run", "h")
    assert jobctl("run", "x").exit_code == 0
    http_id, exec_id = (row["id"] for row in json.loads(jobctl("runs", "--json").stdout)[::-1])
    assert url in jobctl("runs", "show", str(http_id)).stdout  # whole when not fitted

    monkeypatch.setenv("COLUMNS", "80")
    for run_id in (http_id, exec_id):
        shown = jobctl("runs", "show", str(run_id)).stdout.split("\noutput:\n")[0]
        assert widest(shown) <= 80, shown  # the output itself is shown as it came
    shown = jobctl("runs", "show", str(exec_id)).stdout
    request = shown.split("request:\n", 1)[1].split("\n\n", 1)[0]
    assert "word29" in request and "True" not in request
    assert [
        line.split()[:2] for line in request.splitlines() if "shell:" in line or "env:" in line
    ] == [
        ["env:", "-"],
        ["shell:", "/bin/sh"],
    ]
    assert "shell:   /bin/sh -c" in request


def test_fit_widths_cuts_the_widest_free_text_then_drops_columns() -> None:
    columns = [
        Column("ID"),
        Column("A", shrink=True),
        Column("B", shrink=True),
        Column("X", drop=1),
    ]
    # Fits as it is.
    assert fit_widths([2, 10, 10, 5], columns, 40) == [2, 10, 10, 5]
    # The widest free column is cut first, down to the other's width.
    assert fit_widths([2, 60, 25, 5], columns, 70) == [2, 32, 25, 5]
    # Too narrow for both free columns at 20: the optional X goes before they are cut more.
    assert fit_widths([2, 60, 25, 5], columns, 46) == [2, 20, 20, None]
    text = table([["1", "é" * 50, "b", "x"]], columns, width=30)
    assert widest(text) <= 30 and "…" in text


def test_list_with_a_long_name_never_exceeds_the_width(
    db_path: Path, jobctl: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "abcdefghij-abcdefghij-abcdefghij-abcd"  # 37 characters
    assert jobctl("add", name, "--url", LONG_URL, "--cron", "*/5 * * * *").exit_code == 0
    assert (
        jobctl("add", "short", "--exec", "echo a long command line", "--every", "5m").exit_code == 0
    )
    assert jobctl("run", "short").exit_code == 0
    for columns in (80, 60, 45):
        monkeypatch.setenv("COLUMNS", str(columns))
        fitted = jobctl("list").stdout
        assert widest(fitted) <= columns, fitted
        assert name in fitted.split()  # whole
        fitted = jobctl("runs").stdout
        assert widest(fitted) <= columns, fitted
    monkeypatch.setenv("COLUMNS", "20")  # narrower than the name: only the name overflows
    fitted = jobctl("list").stdout
    assert fitted.splitlines()[1:] == [name, "short"]


def test_fit_widths_drops_more_columns_as_a_last_resort() -> None:
    columns = [Column("NAME", whole=True), Column("A", shrink=True), Column("N"), Column("S")]
    assert fit_widths([30, 20, 6, 9], columns, 60) == [30, 9, 6, 9]
    # Free text goes first, then the others from the right; the name stays.
    assert fit_widths([30, 20, 6, 9], columns, 49) == [30, None, 6, 9]
    assert fit_widths([30, 20, 6, 9], columns, 40) == [30, None, 6, None]
    assert fit_widths([30, 20, 6, 9], columns, 10) == [30, None, None, None]


# ------------------------------------------------------------------------ runs --follow


def test_follow_prints_its_header_once(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "beat", "--exec", "echo beat", "--every", "1s")
    out = follow_beat_until_three_runs(db_path, columns="80")
    lines = out.splitlines()
    assert lines[0].startswith("ID") and sum(line.startswith("ID") for line in lines) == 1
    assert len(lines) >= 3 and all(" beat " in line for line in lines[1:])
    assert widest(out) <= 80


# ------------------------------------------------------------------- runs help, completion


def test_runs_help_shows_the_list_options(db_path: Path, jobctl: Invoke) -> None:
    text = jobctl("runs", "--help").stdout
    for option in ("--status", "--since", "--limit", "--follow", "--format", "--json", "--wide"):
        assert option in text
    assert "show" in text and "prune" in text and "clear" in text


def test_runs_takes_options_before_or_after_the_name(history_db: Path, jobctl: Invoke) -> None:
    for args in (
        ("runs", "alpha", "--limit", "2", "--json"),
        ("runs", "--limit", "2", "alpha", "--json"),
        ("runs", "--db", str(history_db), "alpha", "--limit", "2", "--json"),
        ("runs", "list", "alpha", "--limit", "2", "--json"),
    ):
        rows = json.loads(jobctl(*args).stdout)
        assert [row["job"] for row in rows] == ["alpha", "alpha"], args
    run_id = json.loads(jobctl("runs", "--json").stdout)[0]["id"]
    assert json.loads(jobctl("runs", "show", str(run_id), "--json").stdout)["id"] == run_id
    assert jobctl("runs", "--db").exit_code == 2
    assert jobctl("runs", "nope").exit_code == 3


@pytest.fixture
def history_db(db_path: Path, jobctl: Invoke) -> Path:
    fill(db_path, jobctl, {"alpha": ["succeeded", "failed", "timed_out"], "beta": ["succeeded"]})
    return db_path


def complete(db_path: Path, line: str) -> list[str]:
    """What bash completion offers for `line` (the last word being completed), for real."""
    words = line.split(" ")
    result = subprocess.run(
        [sys.executable, "-m", "jobctl"],
        env={
            **os.environ,
            "JOBCTL_DB": str(db_path),
            "_JOBCTL_COMPLETE": "bash_complete",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return [item.split(",", 1)[1] for item in result.stdout.splitlines()]


def test_completion_of_option_values(history_db: Path) -> None:
    assert complete(history_db, "jobctl runs --status ") == [
        "queued",
        "running",
        "waiting",
        "succeeded",
        "failed",
        "timed_out",
        "skipped",
        "missed",
        "interrupted",
        "cancelled",
    ]
    assert complete(history_db, "jobctl runs alpha --status ti") == ["timed_out"]
    assert complete(history_db, "jobctl runs --trigger ma") == ["manual"]
    assert complete(history_db, "jobctl runs --format j") == ["json", "jsonl"]
    assert complete(history_db, "jobctl add x --tz Europe/Be") == [
        "Europe/Belfast",
        "Europe/Belgrade",
        "Europe/Berlin",
    ]
    assert "America/New_York" in complete(history_db, "jobctl next --tz america/new")
    assert complete(history_db, "jobctl edit alpha --overlap ") == ["skip", "queue", "allow"]
    assert complete(history_db, "jobctl edit alpha --catchup l") == ["latest"]
    offered = complete(history_db, "jobctl runs ")
    assert {"show", "prune", "clear", "alpha", "beta"} <= set(offered)
    assert "--status" in complete(history_db, "jobctl runs --st")


def test_click_default_group_is_gone() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "click-default-group" not in text and "click_default_group" not in text


# ------------------------------------------------------------------------------ status


def record(
    db_path: Path,
    job: str,
    status: str,
    created: datetime,
    finished: datetime,
    details: dict[str, object] | None = None,
) -> None:
    """One finished run, written through the engine's own claim and record steps."""
    conn = db.connect(db_path)
    conn.execute(
        "UPDATE jobs SET state = 'enabled', next_run_at = ? WHERE name = ?",
        (created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), job),
    )
    step = engine.claim_due(SqliteStore(conn), created, awake_since=created, owner=OWNER)
    (claim,) = step.claims
    outcome = Outcome(
        status=status,
        started_at=created,
        finished_at=finished,
        http_status=500,
        error="HTTP 500" if status != "succeeded" else None,
        output="",
        details=details or {},
    )
    engine.record_outcomes(SqliteStore(conn), [(claim, outcome)], finished)
    conn.execute(
        "UPDATE jobs SET next_run_at = '2099-01-01T00:00:00.000000Z' WHERE name = ?", (job,)
    )
    conn.close()


def test_status_counts_each_status_and_names_failing_jobs(db_path: Path, jobctl: Invoke) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for name, limit in (("web", "0"), ("report", "0"), ("flaky", "2")):
        args = ("add", name, "--url", "http://127.0.0.1:9/", "--every", "1m", "--overlap", "allow")
        assert jobctl(*args, "--catchup", "skip", "--max-failures", limit).exit_code == 0
    hour = timedelta(hours=1)
    # In creation order, as ids grow. Created two days ago, still running until an hour ago:
    # it ended in the window and counts.
    record(db_path, "report", "interrupted", now - 48 * hour, now - hour)
    # Ended before the window: not counted.
    record(db_path, "web", "failed", now - 30 * hour, now - 29 * hour)
    record(db_path, "web", "failed", now - 3 * hour, now - 3 * hour)
    record(db_path, "flaky", "failed", now - 3 * hour, now - 3 * hour)
    record(db_path, "web", "succeeded", now - 2 * hour, now - 2 * hour)
    record(db_path, "report", "timed_out", now - 2 * hour, now - 2 * hour)
    record(db_path, "flaky", "failed", now - 2 * hour, now - 2 * hour)

    data = json.loads(jobctl("status", "--json").stdout)
    assert data["counts_24h"]["failed"] == 3
    assert data["counts_24h"]["timed_out"] == 1
    assert data["counts_24h"]["interrupted"] == 1
    assert data["counts_24h"]["succeeded"] == 1
    assert data["failed_24h"] == 5  # every failure status, as before
    failed_in_runs = json.loads(
        jobctl("runs", "--status", "failed", "--since", "24h", "--json").stdout
    )
    assert len(failed_in_runs) == data["counts_24h"]["failed"]
    assert data["failing_jobs"] == [
        {"job": "flaky", "failures": 2},
        {"job": "report", "failures": 2},
        {"job": "web", "failures": 1},
    ]
    assert data["auto_paused"] == [
        {"job": "flaky", "reason": "auto-paused after 2 failures in a row"}
    ]

    text = jobctl("status").stdout
    assert "1 succeeded, 3 failed, 1 timed out, 1 interrupted" in text
    assert "flaky (2), report (2), web (1)" in text
    assert "flaky (auto-paused after 2 failures in a row)" in text


# ----------------------------------------------------------------- runs show, --since


def test_runs_show_prints_token_usage_and_delivery_readably(db_path: Path, jobctl: Invoke) -> None:
    assert jobctl("add", "ask", "--url", "http://127.0.0.1:9/", "--every", "1m").exit_code == 0
    now = datetime.now(UTC).replace(microsecond=0)
    details = {
        "model": "m1",
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        "latency_ms": 42,
        "delivery": {
            "url": "https://hooks.example/x",
            "status": 500,
            "ok": False,
            "error": "HTTP 500",
        },
    }
    record(db_path, "ask", "succeeded", now, now, details)
    text = jobctl("runs", "show", "1").stdout
    assert "tokens:" in text and "11 in + 7 out = 18" in text
    assert "latency:" in text and "42 ms" in text
    assert "failed to deliver to https://hooks.example/x (HTTP 500): HTTP 500" in text
    assert "{" not in text


def test_since_error_names_the_forms_runs_takes(db_path: Path, jobctl: Invoke) -> None:
    result = jobctl("runs", "--since", "yesterday")
    assert result.exit_code == 2
    assert "job's zone" not in result.stderr
    assert "24h" in result.stderr and "2026-12-01 09:00" in result.stderr
    # `add --at` still names the job's zone, which is where it reads the time.
    assert "job's zone" in jobctl("add", "x", "--url", "http://h/", "--at", "soon").stderr
