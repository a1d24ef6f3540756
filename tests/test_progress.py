"""Progress bars of long operations: on stderr when it is a terminal, never when piped or
with --quiet (`runs prune`, `backup`, `restore`, `apply`, `import crontab`)."""

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
from tests.realparts import ROOT, jobctl_command
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


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_quiet_is_offered(command: str, jobctl: Invoke) -> None:
    assert "--quiet" in jobctl(command, "--help").stdout
