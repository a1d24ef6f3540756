"""Progress bars of long operations: on stderr when it is a terminal, never when piped or
with --quiet (`runs prune`, `backup`, `restore`, `db copy`, `apply`, `import crontab`)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import Invoke
from tests.realparts import ROOT, jobctl_command, query
from tests.test_prune_order import mixed_db  # noqa: F401 - a fixture


def on_terminal(db: Path, *args: str) -> tuple[int, str, str]:
    """`jobctl ARGS` with stderr a terminal (a pty, read as it comes); (code, out, err)."""
    leader, follower = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        done = subprocess.run(
            jobctl_command(*args),
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "JOBCTL_DB": str(db), "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    return done.returncode, done.stdout, b"".join(chunks).decode(errors="replace")


def piped(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jobctl_command(*args),
        capture_output=True,
        text=True,
        env={**os.environ, "JOBCTL_DB": str(db), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=60,
    )


def test_prune_shows_progress_only_on_a_terminal(mixed_db: Path) -> None:  # noqa: F811
    quiet = piped(mixed_db, "runs", "prune", "--keep", "5")
    assert quiet.returncode == 0 and re.fullmatch(r"removed \d+ runs\n", quiet.stdout)
    assert quiet.stderr == ""  # nothing when piped
    code, out, err = on_terminal(mixed_db, "runs", "prune", "--keep", "2", "--json")
    assert code == 0 and json.loads(out)["removed"] > 0
    assert "pruning runs" in err and "removed" in err and "100%" in err, err
    code, out, err = on_terminal(mixed_db, "runs", "prune", "--keep", "1", "--quiet")
    assert code == 0 and out.startswith("removed") and err == ""


def test_backup_and_restore_show_pages_on_a_terminal(
    db_path: Path, jobctl: Invoke, tmp_path: Path
) -> None:
    for k in range(200):
        jobctl("add", f"job-{k}", "--exec", "x" * 2000, "--every", "1h")
    copy = tmp_path / "copy.db"
    code, out, err = on_terminal(db_path, "backup", str(copy))
    assert code == 0 and out.startswith("backed up to"), err
    assert "backing up" in err and re.search(r"\d+ of (\d+) pages", err), err
    again = piped(db_path, "backup", str(copy), "--force")
    assert again.returncode == 0 and again.stderr == ""
    code, out, err = on_terminal(db_path, "restore", str(copy), "--yes")
    assert code == 0 and "restored 200 jobs" in out, err
    assert "keeping the current database" in err and "restoring" in err, err
    code, out, err = on_terminal(db_path, "restore", str(copy), "--yes", "--quiet")
    assert code == 0 and err == ""


def test_apply_shows_jobs_checked_then_written_on_a_terminal(db_path: Path, tmp_path: Path) -> None:
    jobs = [
        {"name": f"job-{k}", "action": "exec", "spec": {"command": "true"}} for k in range(2500)
    ]
    for job in jobs:
        job.update(trigger="every", schedule="1h")
    document = tmp_path / "jobs.json"
    document.write_text(json.dumps({"version": 1, "jobs": jobs}), encoding="utf-8")
    code, out, err = on_terminal(db_path, "apply", "-f", str(document))
    assert code == 0 and "applied: 2500 added" in out, err
    assert "checking jobs" in err and "writing jobs" in err and "100%" in err, err
    assert "1,000 of 2,500 jobs" in err and "2,500 of 2,500 jobs" in err, err
    assert query(db_path, "SELECT count(*) FROM jobs")[0][0] == 2500
    jobs[0]["schedule"] = "2h"
    document.write_text(json.dumps({"version": 1, "jobs": jobs}), encoding="utf-8")
    again = piped(db_path, "apply", "-f", str(document))
    assert again.returncode == 0 and "1 changed" in again.stdout
    assert again.stderr == ""  # nothing when piped
    code, out, err = on_terminal(db_path, "apply", "-f", str(document), "--quiet")
    assert code == 0 and out.startswith("nothing to change") and err == ""


def test_import_crontab_shows_jobs_checked_then_added_on_a_terminal(
    db_path: Path, tmp_path: Path
) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("0 3 * * * /usr/bin/backup.sh\n*/5 * * * * /usr/bin/poll\n")
    code, out, err = on_terminal(db_path, "import", "crontab", str(crontab), "--tz", "UTC")
    assert code == 0 and "imported 2 jobs" in out, err
    assert "checking jobs" in err and "adding jobs" in err and "2 of 2 jobs" in err, err
    again = piped(db_path, "import", "crontab", str(crontab), "--tz", "UTC")
    assert again.returncode == 0 and again.stderr == ""
    code, out, err = on_terminal(
        db_path, "import", "crontab", str(crontab), "--tz", "UTC", "--quiet", "--dry-run"
    )
    assert code == 0 and "would import 2 jobs" in out and err == ""
    assert query(db_path, "SELECT count(*) FROM jobs")[0][0] == 4


@pytest.mark.parametrize("command", ["backup", "restore", "apply", "import crontab"])
def test_quiet_is_offered(command: str, jobctl: Invoke) -> None:
    assert "--quiet" in jobctl(*command.split(), "--help").stdout
