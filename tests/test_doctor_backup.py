"""`jobctl doctor`, `jobctl backup` and `jobctl restore` on real database files and a real
daemon subprocess."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl.runs import HOST
from tests.conftest import Invoke, dump_database
from tests.realparts import DaemonProcess, query, run_jobctl, wait_until

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def no_env_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBCTL_ENV_FILE", raising=False)
    monkeypatch.delenv("DOCTOR_TOKEN", raising=False)


def checks(jobctl: Invoke, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    """Doctor's exit code and its checks by name."""
    result = jobctl("doctor", "--json", *args)
    return result.exit_code, {item["check"]: item for item in json.loads(result.stdout)}


def levels(found: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: item["level"] for name, item in found.items()}


def raw(db: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


def file_state(db: Path) -> tuple[bytes, int, list[str]]:
    return db.read_bytes(), db.stat().st_mtime_ns, sorted(os.listdir(db.parent))


def now_text(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------------- doctor


def test_doctor_on_a_healthy_database_warns_only_that_no_daemon_runs(
    jobctl: Invoke, db_path: Path
) -> None:
    jobctl("add", "ping", "--url", "https://example.com/health", "--every", "5m")
    jobctl("add", "report", "--exec", "echo hi", "--cron", "0 9 * * *", "--tz", "Europe/Berlin")
    code, found = checks(jobctl)
    assert code == 0
    assert {name for name, level in levels(found).items() if level != "ok"} == {"daemon"}
    assert found["daemon"]["level"] == "warn"
    assert "not running" in found["daemon"]["message"]
    assert found["database"]["message"] == f"database opens ({db_path}, 2 jobs)"

    text = jobctl("doctor")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0] == f"ok    database opens ({db_path}, 2 jobs)"
    assert any(line.startswith("warn  daemon not running") for line in lines)
    assert "\x1b[" not in text.stdout  # not a terminal: no colour
    assert lines[-1] == f"{len(found)} checks: {len(found) - 1} ok, 1 warning, 0 failures"


def test_doctor_changes_nothing_not_even_an_old_schema(jobctl: Invoke, db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o700)
    old = sqlite3.connect(db_path)
    old.executescript((FIXTURES / "schema_v1.sql").read_text())
    old.close()
    before = file_state(db_path)
    code, found = checks(jobctl)
    assert code == 0
    assert found["schema"]["level"] == "warn"
    assert "will be upgraded on next open" in found["schema"]["message"]
    assert found["wal"]["level"] == "warn"  # the fixture is not in WAL mode yet
    assert file_state(db_path) == before  # same bytes, same mtime, no -wal or -shm left
    assert query(db_path, "PRAGMA user_version")[0][0] == 1


def test_doctor_leaves_a_wal_database_as_it_was(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    before = file_state(db_path)
    assert checks(jobctl)[0] == 0
    jobctl("doctor")
    assert file_state(db_path) == before


def test_doctor_warns_about_a_database_others_can_read(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    db_path.chmod(0o644)
    code, found = checks(jobctl)
    assert code == 0
    assert found["permissions"]["level"] == "warn"
    assert f"database {db_path} is 0644" in found["permissions"]["message"]


def test_doctor_fails_on_a_corrupted_database_without_a_traceback(
    jobctl: Invoke, db_path: Path
) -> None:
    jobctl(
        "add",
        "job-0",
        "--url",
        "https://example.com/0",
        "--every",
        "5m",
        "--description",
        "x" * 300,
    )
    conn = sqlite3.connect(db_path, isolation_level=None)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)") if row[1] != "id"]
    others = ", ".join(column for column in columns if column != "name")
    for number in range(1, 200):
        conn.execute(
            f"INSERT INTO jobs (name, {others}) SELECT ?, {others} FROM jobs WHERE name = 'job-0'",
            (f"job-{number}",),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db_path.stat().st_size
    assert size > 20 * 4096
    with open(db_path, "r+b") as handle:
        handle.seek(size // 2 // 4096 * 4096)
        handle.write(os.urandom(3 * 4096))

    result = run_jobctl(db_path, "doctor")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    failures = [line for line in result.stdout.splitlines() if line.startswith("fail  ")]
    assert failures and ("integrity" in failures[0] or "cannot" in failures[0]), result.stdout


def test_doctor_names_jobs_with_an_unknown_time_zone(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "good", "--url", "https://example.com/", "--every", "5m")
    jobctl("add", "lost", "--url", "https://example.com/", "--cron", "0 9 * * *")
    raw(db_path, "UPDATE jobs SET timezone = 'Mars/Olympus_Mons' WHERE name = 'lost'")
    code, found = checks(jobctl)
    assert code == 1
    assert found["job zones"]["level"] == "fail"
    assert "lost (Mars/Olympus_Mons)" in found["job zones"]["message"]
    assert "good" not in found["job zones"]["message"]
    assert found["schedules"]["level"] == "ok"  # reported once, under its zone


def test_doctor_fails_on_a_schedule_that_no_longer_parses(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "odd", "--url", "https://example.com/", "--cron", "0 9 * * *")
    raw(db_path, "UPDATE jobs SET schedule = '61 9 * * *' WHERE name = 'odd'")
    code, found = checks(jobctl)
    assert code == 1
    assert found["schedules"]["level"] == "fail"
    assert "odd" in found["schedules"]["message"]


def test_doctor_warns_about_undefined_secret_references(
    jobctl: Invoke, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobctl(
        "add",
        "deploy",
        "--url",
        "https://ci.example.com/hook",
        "--manual",
        "--header",
        "Authorization: Bearer ${DOCTOR_TOKEN}",
    )
    code, found = checks(jobctl)
    assert code == 0
    assert found["secrets"]["level"] == "warn"
    assert "${DOCTOR_TOKEN} (used by deploy)" in found["secrets"]["message"]

    env_file = tmp_path / "secrets.env"
    env_file.write_text("DOCTOR_TOKEN=abc\n")
    env_file.chmod(0o600)
    assert levels(checks(jobctl, "--env-file", str(env_file))[1])["secrets"] == "ok"
    monkeypatch.setenv("JOBCTL_ENV_FILE", str(env_file))
    assert levels(checks(jobctl)[1])["secrets"] == "ok"
    env_file.chmod(0o640)
    permissions = checks(jobctl)[1]["permissions"]
    assert permissions["level"] == "warn" and "env file" in permissions["message"]


def test_doctor_on_a_missing_database_is_not_found_and_creates_nothing(
    jobctl: Invoke, db_path: Path
) -> None:
    result = jobctl("doctor")  # JOBCTL_DB names it: a named database must exist
    assert result.exit_code == 3
    assert result.stderr == f"jobctl: no database at {db_path}\n"
    assert not db_path.parent.exists()


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


def test_doctor_checks_agent_endpoints_and_commands(
    jobctl: Invoke, db_path: Path, listener: int
) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    agents = [
        ("local", "openai", {"url": f"http://127.0.0.1:{listener}/v1", "model": "m"}),
        ("gone", "openai", {"url": f"http://127.0.0.1:{closed_port}/v1", "model": "m"}),
        ("shell", "command", {"command": "sh -c 'cat'"}),
        ("missing", "command", {"command": "no-such-agent-program-here --quiet"}),
    ]
    for name, kind, config in agents:
        raw(
            db_path,
            "INSERT INTO agents (name, kind, config, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            name,
            kind,
            json.dumps(config),
            now_text(),
            now_text(),
        )
    code, found = checks(jobctl)
    assert code == 1
    message = found["agents"]["message"]
    assert f"gone (127.0.0.1:{closed_port}" in message
    assert "missing (no-such-agent-program-here is not on PATH)" in message
    assert "local" not in message and "shell" not in message

    raw(db_path, "DELETE FROM agents WHERE name IN ('gone', 'missing')")
    assert checks(jobctl)[1]["agents"]["level"] == "ok"


def test_doctor_warns_about_runs_whose_process_is_gone(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    raw(
        db_path,
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, "
        "owner_pid, owner_host, created_at) SELECT id, 'manual', 'running', ?, ?, ?, "
        "?, ? FROM jobs",
        now_text(),
        now_text(),
        int(ended.stdout),
        HOST,
        now_text(),
    )
    code, found = checks(jobctl)
    assert code == 0
    assert found["runs"]["level"] == "warn"
    assert found["runs"]["message"].startswith("1 run will be marked interrupted")


def test_doctor_fails_when_a_live_daemon_stopped_beating(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    # This test process stands in for a daemon whose loop hangs: alive (started before the
    # recorded start, so its pid is not a reused one), heartbeat a minute old.
    raw(
        db_path,
        "INSERT INTO daemon (id, pid, host, started_at, last_tick_at) VALUES (1, ?, ?, ?, ?)",
        os.getpid(),
        HOST,
        now_text(),
        now_text(timedelta(minutes=-1)),
    )
    code, found = checks(jobctl)
    assert code == 1
    assert found["daemon"]["level"] == "fail"
    assert found["daemon"]["message"].startswith("daemon stuck?")


# ------------------------------------------------------------------------ backup, restore


def job_names(db: Path) -> list[str]:
    return [row[0] for row in query(db, "SELECT name FROM jobs ORDER BY name")]


def test_backup_while_the_daemon_fires_then_restore_once_it_stopped(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    jobctl("add", "tick", "--exec", "echo tick", "--every", "1s")
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        wait_until(
            lambda: (
                query(db_path, "SELECT count(*) FROM runs WHERE status = 'succeeded'")[0][0] >= 2
            ),
            10,
            "two runs",
        )
        healthy = run_jobctl(db_path, "doctor")
        assert healthy.returncode == 0, healthy.stdout
        assert "ok    daemon running (pid" in healthy.stdout

        target = tmp_path / "backup.db"
        made = run_jobctl(db_path, "backup", str(target), "--json")
        assert made.returncode == 0, made.stderr
        report = json.loads(made.stdout)
        assert report["path"] == str(target) and report["bytes"] == target.stat().st_size
        assert report["jobs"] == 1 and report["runs"] >= 2
        assert target.stat().st_mode & 0o777 == 0o600
        assert not Path(f"{target}-wal").exists()  # one complete file
        copy = sqlite3.connect(f"{target.as_uri()}?immutable=1", uri=True)
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT name FROM jobs").fetchall() == [("tick",)]
        assert copy.execute("SELECT count(*) FROM runs").fetchone()[0] == report["runs"]
        copy.close()

        before = target.read_bytes()
        again = run_jobctl(db_path, "backup", str(target))
        assert again.returncode == 1
        assert "--force" in again.stderr
        assert target.read_bytes() == before

        refused = run_jobctl(db_path, "restore", str(target), "--yes")
        assert refused.returncode == 4
        assert "stop the daemon first: jobctl daemon stop" in refused.stderr
    finally:
        assert daemon.stop() == 0

    jobctl("add", "later", "--exec", "true", "--manual")
    restored = run_jobctl(db_path, "restore", str(target), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert job_names(db_path) == ["tick"]
    [kept] = db_path.parent.glob(f"{db_path.name}.before-restore-*")
    assert kept.stat().st_mode & 0o777 == 0o600
    assert job_names(kept) == ["later", "tick"]
    assert str(kept) in restored.stdout
    after = run_jobctl(db_path, "doctor", "--json")
    assert after.returncode == 0, after.stdout
    assert {item["check"] for item in json.loads(after.stdout) if item["level"] != "ok"} == {
        "daemon"
    }


def test_backup_force_overwrites(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    target = tmp_path / "copy.db"
    target.write_text("old")
    assert jobctl("backup", str(target)).exit_code == 1
    assert target.read_text() == "old"
    result = jobctl("backup", str(target), "--force")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"backed up to {target} (")
    assert job_names(target) == ["ping"]
    assert sorted(os.listdir(tmp_path)) == sorted(["copy.db", "data"])  # no temporary files


def test_restore_of_a_file_that_is_not_a_jobctl_database_changes_nothing(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    before = dump_database(db_path)
    listing = sorted(os.listdir(db_path.parent))
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things (x)")
    conn.commit()
    conn.close()
    # Not a usable database: 1; no such file (bad input, as for `apply -f`): 2.
    for candidate, code in ((text, 1), (other, 1), (tmp_path / "nowhere.db", 2), (tmp_path, 2)):
        result = jobctl("restore", str(candidate), "--yes")
        assert result.exit_code == code, (candidate, result.stderr)
        assert result.stderr.startswith("jobctl: ")
    assert dump_database(db_path) == before
    assert sorted(os.listdir(db_path.parent)) == listing


def test_restore_without_yes_and_without_a_terminal_is_refused(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    jobctl("add", "ping", "--url", "https://example.com/", "--every", "5m")
    target = tmp_path / "copy.db"
    assert jobctl("backup", str(target)).exit_code == 0
    jobctl("add", "pong", "--url", "https://example.com/", "--every", "5m")
    before = dump_database(db_path)
    result = jobctl("restore", str(target))
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert dump_database(db_path) == before
    assert not list(db_path.parent.glob("*.before-restore-*"))


def test_restore_upgrades_an_older_backup(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript((FIXTURES / "schema_v1.sql").read_text())
    conn.close()
    result = jobctl("restore", str(old), "--yes")
    assert result.exit_code == 0, result.stderr
    assert "schema upgraded from version 1" in result.stdout
    assert job_names(db_path) == ["nightly"]
    assert query(old, "PRAGMA user_version")[0][0] == 1  # the backup itself is untouched
    assert checks(jobctl)[1]["schema"]["level"] == "ok"


def test_doctor_checks_references_in_deliver_notify_and_agents(
    jobctl: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DR_AGENT_URL", "DR_AGENT_HEADER", "DR_KEY", "DR_DELIVER", "DR_NOTIFY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("JOBCTL_ENV_FILE", raising=False)
    assert (
        jobctl(
            "agent",
            "add",
            "gpt",
            "--url",
            "https://${DR_AGENT_URL}/v1",
            "--model",
            "m",
            "--header",
            "X-Team: ${DR_AGENT_HEADER}",
            "--api-key-env",
            "DR_KEY",
        ).exit_code
        == 0
    )
    assert (
        jobctl(
            "add",
            "digest",
            "--agent",
            "gpt",
            "--prompt",
            "hi",
            "--manual",
            "--deliver",
            "https://chat.example.com/hook?t=${DR_DELIVER}",
        ).exit_code
        == 0
    )
    assert (
        jobctl(
            "add",
            "ping",
            "--url",
            "https://example.com/",
            "--manual",
            "--notify-on",
            "failure",
            "https://alerts.example.com/${DR_NOTIFY}",
        ).exit_code
        == 0
    )
    code, found = checks(jobctl)
    assert code == 0 and found["secrets"]["level"] == "warn"
    message = found["secrets"]["message"]
    for expected in (
        "${DR_DELIVER} (used by digest)",
        "${DR_NOTIFY} (used by ping)",
        "${DR_AGENT_URL} (used by agent gpt)",
        "${DR_AGENT_HEADER} (used by agent gpt)",
        "${DR_KEY} (used by agent gpt)",
    ):
        assert expected in message
    assert found["agents"]["level"] == "warn"  # not "reachable": its host is unknown
    assert "gpt" in found["agents"]["message"]

    env_file = tmp_path / "secrets.env"
    env_file.write_text("DR_AGENT_URL=h\nDR_AGENT_HEADER=t\nDR_KEY=k\nDR_DELIVER=d\nDR_NOTIFY=n\n")
    env_file.chmod(0o600)
    found = checks(jobctl, "--env-file", str(env_file))[1]
    assert found["secrets"] == {**found["secrets"], "level": "ok"}
    assert "(5 names)" in found["secrets"]["message"]
