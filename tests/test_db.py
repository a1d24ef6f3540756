"""The store: created private, in WAL mode, migrated once, refused when foreign."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from jobctl.errors import Failed
from jobctl.store import sqlite as db


def test_blank_database_is_private_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "jobctl.db"
    conn = db.connect(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "runs", "agents", "daemon"} <= tables


def test_opening_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobctl.db"
    db.connect(path).close()
    first = list(sqlite3.connect(path).iterdump())
    conn = db.connect(path)
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    assert list(conn.iterdump()) == first


def test_a_failing_migration_leaves_the_schema_as_it_was(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "jobctl.db")

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.migrate(conn, [*db.MIGRATIONS, ("broken", broken)])
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name='half_done'").fetchone() is None


def test_migrations_sort_in_temporary_files_and_the_connection_then_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A migration's CREATE INDEX sorts the whole runs table: with temp_store = MEMORY an
    # upgrade of a big history held it all in RAM (schema 6's indexes over 1.5 million runs:
    # 25 -> 120 MB). The connection keeps its sorts and statement journals in memory once
    # migrated.
    path = tmp_path / "jobctl.db"
    db.connect(path).close()
    seen: list[int] = []

    def probe(c: sqlite3.Connection) -> None:
        seen.append(c.execute("PRAGMA temp_store").fetchone()[0])

    monkeypatch.setattr(db.migrations, "MIGRATIONS", [*db.MIGRATIONS, ("probe", probe)])
    conn = db.connect(path)
    assert seen == [0]  # the default: temporary files (SQLITE_TEMP_STORE 1, as built)
    assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY


def test_text_file_is_not_a_usable_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(Failed, match="not a usable jobctl database"):
        db.connect(path)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE customers (id)")
    other.commit()
    other.close()
    with pytest.raises(Failed, match="not a jobctl one"):
        db.connect(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobctl.db"
    db.connect(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 5}")
    raw.close()
    with pytest.raises(Failed, match="newer than this jobctl"):
        db.connect(path)


def test_upgrade_from_schema_version_1_keeps_jobs_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    fixture = Path(__file__).parent / "fixtures" / "schema_v1.sql"
    old = sqlite3.connect(path)
    old.executescript(fixture.read_text())
    old.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
    conn = db.connect(path)
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    assert [tuple(r) for r in conn.execute("SELECT name, schedule FROM jobs")] == [
        ("nightly", "0 3 * * *")
    ]
    run = conn.execute("SELECT status, http_status, due_at FROM runs").fetchone()
    assert tuple(run) == ("succeeded", 200, None)
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "runs_one_per_slot" in indexes


def test_exec_jobs_from_before_the_shell_default_keep_running_without_a_shell(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobctl.db"
    names = [name for name, _ in db.MIGRATIONS]
    before = names.index("exec jobs stored without `shell` keep running without one")
    conn = sqlite3.connect(path, isolation_level=None)
    db.configure(conn)
    db.migrate(conn, db.MIGRATIONS[:before])
    specs = {
        "old": {"command": "echo $HOME", "cwd": None, "env": {}},
        "shelled": {"command": "echo $HOME", "cwd": None, "env": {}, "shell": True},
        "direct": {"command": "echo $HOME", "cwd": None, "env": {}, "shell": False},
    }
    for name, spec in specs.items():
        conn.execute(
            "INSERT INTO jobs (name, action, spec, trigger, timezone, created_at, updated_at) "
            "VALUES (?, 'exec', ?, 'manual', 'UTC', 'x', 'x')",
            (name, json.dumps(spec)),
        )
    conn.execute(
        "INSERT INTO jobs (name, action, spec, trigger, timezone, created_at, updated_at) "
        "VALUES ('web', 'http', '{\"url\": \"http://h/\"}', 'manual', 'UTC', 'x', 'x')"
    )
    conn.close()
    conn = db.connect(path)
    stored = {row[0]: json.loads(row[1]) for row in conn.execute("SELECT name, spec FROM jobs")}
    assert stored["old"]["shell"] is False
    assert stored["shelled"]["shell"] is True
    assert stored["direct"]["shell"] is False
    assert stored["web"] == {"url": "http://h/"}
