"""Opening the database: a named one that is missing, the default one, another program's file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobctl.store import sqlite as db
from tests.conftest import Invoke, create_database
from tests.realparts import ROOT, jobctl_command, run_jobctl

READERS = [
    ("list",),
    ("show", "x"),
    ("next", "x"),
    ("runs",),
    ("runs", "x"),
    ("runs", "show", "1"),
    ("status",),
    ("export",),
    ("doctor",),
    ("agent", "list"),
    ("agent", "show", "x"),
    ("agent", "test", "x", "hello"),
    ("hook", "show", "x"),
    ("daemon", "status"),
    ("daemon", "logs"),
]


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_a_reading_command_on_a_named_database_that_is_missing_is_not_found(
    jobctl: Invoke, tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "nodir" / "x.db"
    result = jobctl("--db", str(missing), *args)
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == f"jobctl: no database at {missing}\n"
    assert not missing.parent.exists()


def test_jobctl_db_names_the_database_as_much_as_the_option(jobctl: Invoke, db_path: Path) -> None:
    result = jobctl("list")  # the fixture sets JOBCTL_DB to a file not created yet
    assert result.exit_code == 3
    assert result.stderr == f"jobctl: no database at {db_path}\n"
    assert not db_path.parent.exists()


def test_backup_of_a_missing_database_is_not_found(jobctl: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "nodir" / "x.db"
    result = jobctl("--db", str(missing), "backup", str(tmp_path / "copy.db"))
    assert result.exit_code == 3
    assert result.stderr == f"jobctl: no database at {missing}\n"
    assert not missing.parent.exists() and not (tmp_path / "copy.db").exists()


def test_a_writing_command_creates_the_named_database(jobctl: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "new" / "x.db"
    assert jobctl("--db", str(path), "add", "x", "--exec", "true", "--manual").exit_code == 0
    assert path.is_file()
    assert [
        job["name"] for job in json.loads(jobctl("--db", str(path), "list", "--json").stdout)
    ] == ["x"]


@pytest.fixture
def default_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No --db, no JOBCTL_DB: the user data directory (platformdirs reads XDG_DATA_HOME)."""
    monkeypatch.delenv("JOBCTL_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "jobctl" / "jobctl.db"


def test_the_default_database_not_created_yet_reads_as_empty(
    jobctl: Invoke, default_db: Path, tmp_path: Path
) -> None:
    assert json.loads(jobctl("list", "--json").stdout) == []
    assert json.loads(jobctl("runs", "--json").stdout) == []
    assert json.loads(jobctl("agent", "list", "--json").stdout) == []
    assert json.loads(jobctl("export", "--json").stdout) == {"version": 1, "agents": [], "jobs": []}
    status = jobctl("status", "--json")
    assert status.exit_code == 0
    assert json.loads(status.stdout)["jobs"] == {"enabled": 0, "paused": 0, "completed": 0}
    assert jobctl("show", "x").exit_code == 3
    assert "no job named 'x'" in jobctl("show", "x").stderr
    doctor = jobctl("doctor")
    assert doctor.exit_code == 0
    assert f"no database yet at {default_db}" in doctor.stdout
    assert not (tmp_path / "xdg").exists()
    assert jobctl("add", "x", "--exec", "true", "--manual").exit_code == 0
    assert default_db.is_file()


def _foreign_database(path: Path) -> bytes:
    """Another program's SQLite file, in rollback-journal mode (WAL would show in its header)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    "args", [("list",), ("add", "x", "--exec", "true", "--manual"), ("status",)], ids=" ".join
)
def test_another_programs_database_is_refused_and_left_byte_for_byte(
    jobctl: Invoke, tmp_path: Path, args: tuple[str, ...]
) -> None:
    path = tmp_path / "other.db"
    before = _foreign_database(path)
    result = jobctl("--db", str(path), *args)
    assert result.exit_code == 1
    assert result.stderr == f"jobctl: {path} is an SQLite database but not a jobctl one\n"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_an_empty_file_reads_as_an_empty_database_and_is_not_written(
    jobctl: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    result = jobctl("--db", str(path), "list")
    assert result.exit_code == 0, result.stderr
    assert "no jobs yet" in result.stderr
    assert json.loads(jobctl("--db", str(path), "list", "--json").stdout) == []
    assert json.loads(jobctl("--db", str(path), "runs", "--json").stdout) == []
    assert jobctl("--db", str(path), "status").exit_code == 0
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    # a writing command makes it a jobctl database
    assert jobctl("--db", str(path), "add", "x", "--exec", "true", "--manual").exit_code == 0
    assert [
        job["name"] for job in json.loads(jobctl("--db", str(path), "list", "--json").stdout)
    ] == ["x"]


def test_a_foreign_database_with_a_jobs_table_gets_no_lock_and_doctor_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, what TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    daemon = run_jobctl(path, "daemon", timeout=30)
    assert daemon.returncode == 1
    assert daemon.stderr == f"jobctl: {path} is an SQLite database but not a jobctl one\n"
    doctor = run_jobctl(path, "doctor", timeout=30)
    assert doctor.returncode == 1
    assert f"fail  {path} is an SQLite database but not a jobctl one" in doctor.stdout
    assert "database opens" not in doctor.stdout and "schema version" not in doctor.stdout
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_a_file_with_a_user_version_but_no_jobctl_tables_is_refused(
    jobctl: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "other.db"
    _foreign_database(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    before = path.read_bytes()
    result = jobctl("--db", str(path), "add", "x", "--exec", "true", "--manual")
    assert result.exit_code == 1 and "not a jobctl one" in result.stderr
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused_and_left_byte_for_byte(jobctl: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    create_database(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    before = path.read_bytes()
    result = jobctl("--db", str(path), "list")
    assert result.stderr == (
        f"jobctl: {path} has schema version 999, newer than this jobctl knows "
        f"({db.SCHEMA_VERSION}): upgrade jobctl\n"
    )
    assert path.read_bytes() == before


# ------------------------------------------------------------------ a database we cannot write


@pytest.fixture
def read_only_db(tmp_path: Path) -> Iterator[Path]:
    """A jobctl database with a job, a run and an orphaned `running` row, on a read-only mount.

    chmod does not stop root (and CI runs the tests as root), but a read-only file system
    refuses everyone: a tmpfs, filled, then remounted read-only.
    """
    mount = tmp_path / "ro"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only file system needs root (the chmod case covers this)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        path = mount / "jobctl.db"
        _fill(path)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(path: Path) -> None:
    assert run_jobctl(path, "add", "x", "--exec", "echo hi", "--every", "1h").returncode == 0
    assert run_jobctl(path, "run", "x").returncode == 0
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, owner_pid, "
        "owner_host, created_at) SELECT id, 'manual', 'running', '2025-01-01T00:00:00Z', "
        "'2025-01-01T00:00:00Z', 999999999, ?, '2025-01-01T00:00:00Z' FROM jobs",
        (socket.gethostname(),),
    )
    conn.commit()
    conn.close()


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _check_reads_and_refused_writes(path: Path, run: Callable[..., Any]) -> None:
    before = _snapshot(path.parent)
    jobs = json.loads(run("list", "--json").stdout)
    assert [job["name"] for job in jobs] == ["x"]
    assert run("show", "x").returncode == 0
    assert run("next", "x", "-n", "1").returncode == 0
    history = json.loads(run("runs", "--json").stdout)
    assert sorted(r["status"] for r in history) == ["running", "succeeded"]  # not tidied
    assert run("runs", "show", str(history[-1]["id"])).returncode == 0
    assert json.loads(run("status", "--json").stdout)["jobs"]["enabled"] == 1
    assert "echo hi" in run("export").stdout
    assert run("daemon", "status").returncode == 4  # no daemon, and said so without failing
    doctor = run("doctor")
    assert doctor.returncode == 1, doctor.stdout
    assert "database is not writable" in doctor.stdout and "the daemon cannot" in doctor.stdout
    for args in (("add", "y", "--exec", "true", "--manual"), ("pause", "x"), ("daemon",)):
        refused = run(*args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert refused.stderr.startswith(f"jobctl: cannot write the database {path}: ")
        assert "not writable" in refused.stderr
        assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert _snapshot(path.parent) == before


def test_a_database_on_a_read_only_file_system_is_read_and_never_written(
    read_only_db: Path,
) -> None:
    _check_reads_and_refused_writes(
        read_only_db, lambda *args: run_jobctl(read_only_db, *args, timeout=30)
    )


def test_a_database_this_user_may_not_write_is_read_and_never_written(tmp_path: Path) -> None:
    # As root, run the commands as `nobody`, for whom a 0644 file in a 0755 directory is
    # read-only (tmp_path's parents are private to root, so use a directory under /tmp);
    # as anyone else, take write permission away with chmod.
    user = 65534 if os.geteuid() == 0 else None
    if user is not None:
        try:
            subprocess.run([sys.executable, "-c", "pass"], user=user, check=True, timeout=30)
        except (PermissionError, subprocess.CalledProcessError):
            pytest.skip(
                f"user nobody cannot run {sys.executable} here (the mount case covers root)"
            )
    base = Path(tempfile.mkdtemp(prefix="jobctl-ro-")) if user is not None else tmp_path
    directory = base / "data"
    directory.mkdir()
    path = directory / "jobctl.db"
    _fill(path)
    if user is not None:
        base.chmod(0o755)
        path.chmod(0o644)
        directory.chmod(0o755)
    else:
        path.chmod(0o400)
        directory.chmod(0o500)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            jobctl_command(*args),
            capture_output=True,
            text=True,
            env={**os.environ, "JOBCTL_DB": str(path), "HOME": str(base)},
            timeout=30,
            cwd=ROOT,
            user=user,
        )

    try:
        _check_reads_and_refused_writes(path, run)
    finally:
        directory.chmod(0o700)
        if user is not None:
            shutil.rmtree(base)
