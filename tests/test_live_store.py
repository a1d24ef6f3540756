"""The live store operations: output pieces and events, and migration 10 keeping old runs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobctl.models import EventType, OutputPiece, OutputStream, RunStatus, RunTrigger
from jobctl.paths import DbLocation
from jobctl.store import open_store
from jobctl.store.sqlite.migrations import MIGRATIONS, migrate
from jobctl.store.statuses import status_in

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def test_output_pieces_come_back_in_order_after_a_seq(store_at: DbLocation) -> None:
    store = open_store(store_at)
    with store.write():
        run_id = store.insert_run(
            job_id=None,
            trigger=RunTrigger.MANUAL,
            status=RunStatus.RUNNING,
            scheduled_for=NOW,
            now=NOW,
            adhoc="{}",
        )
    assert run_id == 1
    pieces = [
        OutputPiece(1, 1, OutputStream.STDOUT, NOW, "one\n"),
        OutputPiece(1, 2, OutputStream.STDERR, NOW, "oops\n"),
        OutputPiece(1, 3, OutputStream.STDOUT, NOW, "two\n"),
    ]
    store.append_output(pieces)
    store.append_output(pieces[2:])  # a repeat is ignored
    assert store.output_after(1) == pieces
    assert [p.text for p in store.output_after(1, 1)] == ["oops\n", "two\n"]
    assert store.last_output_lines([1, 2]) == {1: "two\n"}


def test_events_increase_and_resume_after_an_id(store_at: DbLocation) -> None:
    store = open_store(store_at)
    first = store.add_event(EventType.JOB_ADDED, NOW, job="a")
    with store.write():
        second = store.add_event(EventType.RUN_STARTED, NOW, job="a", run=7, data={"attempt": 1})
    assert second > first
    assert [e.id for e in store.events_after(first)] == [second]
    assert store.events_after(first)[0].data == {"attempt": 1}
    assert store.last_event_id() == second
    assert store.delete_events_before(NOW + timedelta(days=1)) == 1
    assert store.last_event_id() == second  # the newest is kept: ids go on increasing
    third = store.add_event(EventType.JOB_REMOVED, NOW, job="a")
    assert third > second


def test_migration_10_keeps_runs_and_their_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn, MIGRATIONS[:9])
    conn.execute(
        "INSERT INTO jobs (name, action, spec, trigger, schedule, timezone, state, policies, "
        "created_at, updated_at) VALUES ('a', 'exec', '{}', 'manual', NULL, 'UTC', "
        "'enabled', '{}', 'x', 'x')"
    )
    conn.execute(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, created_at, output) "
        "VALUES (1, 'manual', 'succeeded', 's', 'c', 'hello')"
    )
    before = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'"
        )
    }
    migrate(conn, MIGRATIONS[:10])  # the table rebuilt by migration 10 keeps its indexes
    after = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'"
        )
    }
    assert before <= after
    assert conn.execute("SELECT job_id, output FROM runs").fetchall() == [(1, "hello")]
    conn.execute(  # a run with no job may now be stored
        "INSERT INTO runs (trigger, status, scheduled_for, created_at) "
        "VALUES ('manual', 'running', 's', 'c')"
    )
    conn.execute("DELETE FROM jobs")  # and a job's runs still go with it
    assert conn.execute("SELECT count(*) FROM runs WHERE job_id IS NOT NULL").fetchone() == (0,)


def test_migration_14_drops_only_runs_active(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:13])

    def indexes() -> set[str]:
        return {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' "
                "AND name NOT LIKE 'sqlite_%'"
            )
        }

    before = indexes()
    assert "runs_active" in before
    migrate(conn, MIGRATIONS[:14])
    assert indexes() == before - {"runs_active"}
    # what runs_active answered is still an index search, not a scan of the history
    plan = " ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM runs WHERE status = 'running'"
        )
    )
    assert plan.startswith("SEARCH runs USING"), plan


def test_migration_15_keeps_only_finished_runs_in_the_finished_at_index(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:14])
    conn.execute(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, created_at, finished_at) "
        "VALUES (NULL, 'manual', 'succeeded', 's', 'c', '2026-06-01 12:00:00.000000'), "
        "(NULL, 'manual', 'running', 's', 'c', NULL)"
    )
    migrate(conn)
    # a running row (no finished_at yet) has no entry; a finished one has
    entries = conn.execute(
        "SELECT count(*) FROM runs INDEXED BY runs_finished_at WHERE finished_at >= ''"
    ).fetchone()
    assert entries == (1,)
    # every read of the index asks for a time from on, which the partial index serves
    for sql in (
        "SELECT status, job_id, count(*) FROM runs INDEXED BY runs_finished_at "
        "WHERE finished_at >= ? AND +id < ? GROUP BY status, job_id",
        "SELECT count(*) FROM runs WHERE finished_at >= ?",
    ):
        plan = " ".join(
            row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("x", 1)[: sql.count("?")])
        )
        assert "INDEX runs_finished_at" in plan, plan


def test_migration_16_and_reads_of_running_and_rarer_statuses_search_an_index(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrate(conn)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs_status_id'").fetchone()
    assert sql.endswith("WHERE status NOT IN ('succeeded', 'running')"), sql
    # what the stores ask of running runs and of the other statuses, without a job
    for query in (
        "SELECT runs.id FROM runs INDEXED BY runs_running LEFT JOIN jobs "
        "ON jobs.id = runs.job_id WHERE runs.status = 'running' ORDER BY runs.id",
        f"SELECT id FROM runs WHERE {status_in(['failed'])} AND id >= 1",
        f"SELECT id FROM runs WHERE {status_in(['failed', 'timed_out'])} ORDER BY id DESC",
        f"SELECT job_id FROM runs WHERE {status_in(['queued', 'waiting'])}",
        "SELECT count(*) FROM runs WHERE finished_at >= '2026'",
    ):
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert plan.startswith("SEARCH runs USING") or "INDEX runs_running" in plan, (query, plan)
        assert "runs_job_recent" not in plan, (query, plan)
    # the running runs of every job, as `runs --status running` reads them (its IN of one
    # status must let SQLite use runs_running, which the store forces)
    listed = conn.execute(
        "SELECT runs.id FROM runs INDEXED BY runs_running LEFT JOIN jobs ON jobs.id = "
        f"runs.job_id WHERE {status_in(['running'], 'runs.status')} ORDER BY runs.id DESC"
    ).fetchall()
    assert listed == []
    # a status none knows matches nothing; succeeded and running are listed without it
    assert status_in(["nope"]) == "1 = 0"
    assert status_in(["succeeded", "failed"]) == "status IN ('succeeded', 'failed')"
