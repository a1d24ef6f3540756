"""`jobctl db copy`: an SQLite database moved to PostgreSQL, resumable, counts checked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import Invoke
from tests.realparts import jobctl_command

ROOT = Path(__file__).resolve().parent.parent


def on(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """jobctl against the database `url`."""
    return subprocess.run(
        jobctl_command(*args),
        capture_output=True,
        text=True,
        env={**os.environ, "JOBCTL_DB": url},
        timeout=60,
        cwd=ROOT,
    )


def test_copy_to_postgres_resumes_without_duplicates_and_checks_counts(
    jobctl: Invoke, db_path: Path, pg_url: str
) -> None:
    jobctl("add", "fetch", "--every", "1h", "--url", "http://127.0.0.1:9/", "--queue", "io")
    jobctl("add", "report", "--manual", "--exec", "echo hi", "--after", "fetch:succeeded")
    jobctl("agent", "add", "local", "--command", "cat")
    jobctl("hook", "enable", "report")
    for _ in range(3):
        jobctl("run", "report")
    first = jobctl("db", "copy", "--to", pg_url, "--batch", "2", "--json")
    assert first.exit_code == 0, first.stderr
    counts = json.loads(first.stdout)
    assert (counts["jobs"], counts["agents"], counts["chains"], counts["runs"]) == (2, 1, 1, 3)
    assert counts["resumed"] is False and counts["events"] > 5
    assert "jobctl: runs: 2/3" in first.stderr  # a progress line per batch
    # The same jobs, queue, chain, webhook and history on PostgreSQL.
    shown = json.loads(on(pg_url, "show", "fetch", "--json").stdout)
    assert shown["queue"] == "io"
    assert json.loads(on(pg_url, "show", "report", "--json").stdout)["webhook"]
    assert len(json.loads(on(pg_url, "runs", "report", "--json").stdout)) == 3

    # More history here; the second copy continues where the first stopped.
    jobctl("run", "report")
    second = jobctl("db", "copy", "--to", pg_url, "--json")
    assert second.exit_code == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["resumed"] is True and again["runs"] == 4
    assert "runs: 3/4" in second.stderr
    # New rows in the copy take ids after the copied ones.
    assert on(pg_url, "add", "later", "--manual", "--exec", "true").returncode == 0
    assert on(pg_url, "run", "later").returncode == 0

    # Another database is not copied over this one.
    other = db_path.parent / "other.db"
    refused = on(str(other), "add", "x", "--manual", "--exec", "true")
    assert refused.returncode == 0
    refused = on(str(other), "db", "copy", "--to", pg_url)
    assert refused.returncode == 1
    assert "the target already holds 3 jobs" in refused.stderr


def test_copy_into_itself_is_bad_usage(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "x", "--manual", "--exec", "true")
    result = jobctl("db", "copy", "--to", str(db_path))
    assert result.exit_code == 2 and "names the database being copied" in result.stderr
