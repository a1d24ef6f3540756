"""Edges a review found: secrets in agent URLs, absurd numbers, stopped runs, `runs --db`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Invoke, create_database, dump_database
from tests.realparts import ROOT, job_runs, wait_until


def test_deliver_and_notify_urls_are_redacted_and_export_warns(jobctl: Invoke) -> None:
    assert jobctl("agent", "add", "bot", "--command", "cat").exit_code == 0
    jobctl(
        "add",
        "ag",
        "--agent",
        "bot",
        "--prompt",
        "hi",
        "--manual",
        "--deliver",
        "https://user:deliverpw@example.com/hook?token=abc",
    )
    jobctl(
        "add",
        "n",
        "--exec",
        "true",
        "--manual",
        "--notify-on",
        "failure",
        "https://u:notifypw@hooks.example.com/x",
    )
    shown = jobctl("show", "ag").stdout + jobctl("list", "--json").stdout
    shown += jobctl("show", "n", "--json").stdout
    assert "deliverpw" not in shown and "abc" not in shown and "notifypw" not in shown
    warnings = jobctl("export").stderr
    assert "--deliver URL credentials" in warnings and "--notify-on URL credentials" in warnings


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_apply_refuses_durations_that_are_not_finite(
    jobctl: Invoke, db_path: Path, tmp_path: Path, value: str
) -> None:
    document = tmp_path / "jobs.toml"
    document.write_text(
        'version = 1\n[[jobs]]\nname = "j"\naction = "exec"\ntrigger = "every"\n'
        f'schedule = "1s"\ntimezone = "UTC"\nspec = {{ command = "true" }}\n'
        f"policies = {{ jitter = {value} }}\n"
    )
    jobctl("add", "other", "--exec", "true", "--manual")
    before = dump_database(db_path)
    result = jobctl("apply", "-f", str(document))
    assert result.exit_code == 2 and "jitter" in result.stderr
    assert dump_database(db_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["add", "x", "--exec", "true", "--manual", "--keep", "99999999999999999999999"],
        ["add", "x", "--exec", "true", "--every", "99999999999999999999d"],
        ["add", "x", "--exec", "true", "--every", "1m", "--offset", "99999999999999999999d"],
        ["add", "x", "--exec", "true", "--manual", "--timeout", "99999999999999999999d"],
        ["add", "x", "--exec", "true", "--at", "9999-12-31T23:59:59-05:00"],
        ["next", "--cron", "0 0 * * *", "--after", "9999-12-31T00:00:00Z"],
        ["next", "--every", "1s", "--after", "0001-01-01T00:00:00+05:00"],
        ["runs", "--since", "99999999999d"],
        ["runs", "show", "99999999999999999999"],
        ["add", "x", "--exec", "true", "--manual", "--description", "bad\udcff"],
    ],
)
def test_numbers_and_times_out_of_range_are_bad_input(
    jobctl: Invoke, db_path: Path, args: list[str]
) -> None:
    jobctl("add", "keep", "--exec", "true", "--manual")
    before = dump_database(db_path)
    result = jobctl(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1
    assert dump_database(db_path) == before


def test_runs_with_only_the_db_option_lists(jobctl: Invoke, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    create_database(other)
    result = jobctl("runs", "--db", str(other))
    assert result.exit_code == 0
    assert json.loads(jobctl("runs", "--db", str(other), "--json").stdout) == []


def _run_in_background(db_path: Path, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobctl", "run", name],
        cwd=ROOT,
        env={"JOBCTL_DB": str(db_path), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigterm_to_jobctl_run_marks_the_run_interrupted(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    jobctl("add", "slow", "--exec", f"touch {started}; sleep 30", "--shell", "--manual")
    process = _run_in_background(db_path, "slow")
    wait_until(started.exists, what="the run to start")
    process.send_signal(signal.SIGTERM)
    process.wait(20)
    [row] = job_runs(db_path, "slow")
    assert row["status"] == "interrupted"


def test_readers_mark_runs_of_killed_processes_interrupted(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    jobctl("add", "victim", "--exec", f"touch {started}; sleep 30", "--shell", "--manual")
    process = _run_in_background(db_path, "victim")
    wait_until(started.exists, what="the run to start")
    process.kill()
    process.wait()
    listed = json.loads(jobctl("runs", "victim", "--json").stdout)
    assert [run["status"] for run in listed] == ["interrupted"]
