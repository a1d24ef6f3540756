"""What only the PostgreSQL store has to show: row locks for claims, events committed in id
order, its migrations, the URL's password never shown, and the commands that are the
SQLite file's (backup, restore) refused. The rest of the contract runs on both stores
(tests.conftest.BOTH_STORES, store_at)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl.catalog import insert_job
from jobctl.job_changes import build_job
from jobctl.models import EventType, JobChange
from jobctl.paths import PostgresUrl, redact_url
from jobctl.store import open_store
from tests.realparts import DaemonProcess, run_jobctl, wait_until

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def due_job(url: str, name: str) -> None:
    store = open_store(PostgresUrl(url))
    change = JobChange(name=name, command="true", every="1m", timezone="UTC")
    with store.write():
        insert_job(store, build_job(change, existing=None, now=T0), T0)
    store.close()


def test_a_job_locked_by_one_daemons_claim_is_passed_over_by_another(pg_url: str) -> None:
    due_job(pg_url, "a")
    first, second = open_store(PostgresUrl(pg_url)), open_store(PostgresUrl(pg_url))
    later = T0 + timedelta(hours=1)
    with first.write():
        assert [job.name for job in first.due_jobs(later, 10)] == ["a"]
        with second.write():
            assert second.due_jobs(later, 10) == []  # FOR UPDATE SKIP LOCKED
    with second.write():
        assert [job.name for job in second.due_jobs(later, 10)] == ["a"]


def test_event_writers_commit_in_the_order_of_their_ids(pg_url: str) -> None:
    first, second = open_store(PostgresUrl(pg_url)), open_store(PostgresUrl(pg_url))
    written: list[int] = []
    with first.write():
        early = first.add_event(EventType.JOB_ADDED, T0, job="a")
        writer = threading.Thread(
            target=lambda: written.append(second.add_event(EventType.JOB_ADDED, T0, job="b"))
        )
        writer.start()
        time.sleep(0.2)  # the second writer waits on the lock: nothing of it is visible yet
        assert written == [] and first.last_event_id() == early
    writer.join(10)
    assert written and written[0] > early
    assert [e.job for e in second.events_after(0)] == ["a", "b"]


def test_migrations_are_recorded_and_a_newer_schema_is_refused(pg_url: str) -> None:
    from jobctl.store.postgres import SCHEMA_VERSION

    store = open_store(PostgresUrl(pg_url))
    assert store.schema_version() == SCHEMA_VERSION
    store.conn.execute("UPDATE jobctl_schema SET version = %s", (SCHEMA_VERSION + 1,))
    store.close()
    result = run_jobctl(Path("unused"), "--db", pg_url, "list")
    assert result.returncode == 1
    assert f"newer than this jobctl knows ({SCHEMA_VERSION})" in result.stderr


def test_the_finished_at_index_holds_only_finished_runs(pg_url: str) -> None:
    store = open_store(PostgresUrl(pg_url))
    try:
        row = store.conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'runs_finished_at'"
        ).fetchone()
    finally:
        store.close()
    assert row is not None and row[0].endswith("WHERE (finished_at IS NOT NULL)"), row


def test_a_database_with_another_programs_jobs_table_is_refused(pg_url: str) -> None:
    from tests.pgserver import pg_query

    pg_query(pg_url, "CREATE TABLE jobs (id int)", ())
    result = run_jobctl(Path("unused"), "--db", pg_url, "add", "a", "--exec", "true", "--manual")
    assert result.returncode == 1
    assert "not a jobctl one" in result.stderr
    assert pg_query(pg_url, "SELECT to_regclass('runs')", ())[0][0] is None  # left as it was


def test_the_password_in_the_url_is_never_shown(pg_url: str, tmp_path: Path) -> None:
    secret_url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    assert redact_url(secret_url) == pg_url.replace("postgres@", "postgres:***@")
    added = run_jobctl(tmp_path / "x", "--db", secret_url, "add", "a", "--exec", "true", "--manual")
    assert added.returncode == 0, added.stderr
    (tmp_path / "data").mkdir()
    daemon = DaemonProcess(tmp_path / "data" / "x", env={"JOBCTL_DB": secret_url}).wait_ready()
    assert daemon.stop() == 0
    assert "postgres:***@" in daemon.log() and "hunter2" not in daemon.log()
    for args in (["daemon", "status", "--json"], ["doctor"], ["status"]):
        result = run_jobctl(tmp_path / "x", "--db", secret_url, *args)
        assert "hunter2" not in result.stdout + result.stderr, args
    info = json.loads(
        run_jobctl(tmp_path / "x", "--db", secret_url, "daemon", "status", "--json").stdout
    )
    assert info["database"] == redact_url(secret_url)
    missing = secret_url.rsplit("/", 1)[0] + "/jobctl_no_such_database"
    result = run_jobctl(tmp_path / "x", "--db", missing, "list")
    assert result.returncode == 1
    assert "postgres:***@" in result.stderr and "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args", [["backup", "/tmp/never.db"], ["restore", "/tmp/never.db", "--yes"]]
)
def test_backup_and_restore_point_to_pg_dump(pg_url: str, args: list[str]) -> None:
    result = run_jobctl(Path("unused"), "--db", pg_url, *args)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("use pg_dump/pg_restore for PostgreSQL")


def test_doctor_checks_what_applies_to_a_postgresql_database(pg_url: str) -> None:
    run_jobctl(Path("unused"), "--db", pg_url, "add", "a", "--exec", "true", "--every", "1m")
    result = run_jobctl(Path("unused"), "--db", pg_url, "doctor", "--json")
    checks = {check["check"]: check for check in json.loads(result.stdout)}
    assert result.returncode == 0, result.stdout
    assert checks["database"]["level"] == "ok" and "1 job" in checks["database"]["message"]
    assert "integrity" not in checks and "wal" not in checks  # the server's business
    assert checks["daemon"]["level"] == "warn"


def test_a_daemon_on_postgresql_fires_an_every_second_job_and_stops_cleanly(
    pg_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "data" / "unused.db"
    db.parent.mkdir()
    add = run_jobctl(db, "--db", pg_url, "add", "tick", "--exec", "echo tick", "--every", "1s")
    assert add.returncode == 0, add.stderr
    daemon = DaemonProcess(db, env={"JOBCTL_DB": pg_url}).wait_ready()
    try:
        wait_until(
            lambda: (
                len(
                    [
                        r
                        for r in _runs(pg_url)
                        if r["status"] == "succeeded" and r["trigger"] == "schedule"
                    ]
                )
                >= 2
            ),
            what="two scheduled runs",
        )
        status = json.loads(run_jobctl(db, "--db", pg_url, "status", "--json").stdout)
        assert status["daemon"]["running"] is True
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert not db.exists() and not db.with_name("unused.db.lock").exists()  # no file is made
    slots = [r["scheduled_for"] for r in _runs(pg_url) if r["trigger"] == "schedule"]
    assert len(slots) == len(set(slots))  # each slot once
    assert all(r["status"] != "running" for r in _runs(pg_url))
    status = json.loads(run_jobctl(db, "--db", pg_url, "status", "--json").stdout)
    assert status["daemon"]["running"] is False


def _runs(url: str) -> list[dict[str, object]]:
    from tests.pgserver import pg_query

    rows = pg_query(url, "SELECT trigger, status, scheduled_for FROM runs ORDER BY id", ())
    return [{"trigger": r[0], "status": r[1], "scheduled_for": r[2]} for r in rows]


def test_without_a_server_the_tests_say_how_to_run_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import pgserver

    monkeypatch.setenv(pgserver.SERVER_ENV, "postgresql://nobody@127.0.0.1:1/none")
    pgserver.server_problem.cache_clear()
    try:
        problem = pgserver.server_problem()
    finally:
        pgserver.server_problem.cache_clear()
    assert problem is not None and pgserver.SERVER_ENV in problem and "jobctl[postgres]" in problem


def test_a_dropped_connection_is_opened_again_by_the_next_operation(pg_url: str) -> None:
    from jobctl.store import StoreError
    from tests.pgserver import pg_query

    due_job(pg_url, "a")
    store = open_store(PostgresUrl(pg_url))
    pid = store.conn.info.backend_pid
    pg_query(pg_url, "SELECT pg_terminate_backend(?)", (pid,))
    wait_until(  # the signal is sent at once, the backend ends a moment later
        lambda: not pg_query(pg_url, "SELECT 1 FROM pg_stat_activity WHERE pid = ?", (pid,)),
        what="the backend to end",
    )
    with pytest.raises(StoreError):
        store.count_enabled_jobs()  # the server went away under this one
    assert store.count_enabled_jobs() == 1  # the next one connects again
    with store.write():
        store.heartbeat_stop_if_running()
    store.close()


def test_a_recording_and_a_claim_of_the_same_job_never_deadlock(pg_url: str) -> None:
    """LOCK ORDER: a claim holds its job and then takes the event-order lock; a recording of
    that job's last run locks the job before it writes events (it used to take the event
    lock, then wait for the job: a deadlock PostgreSQL broke by failing one of them)."""
    from jobctl import engine
    from jobctl.actions import Outcome
    from jobctl.models import Owner

    due_job(pg_url, "a")
    claimer, recorder = open_store(PostgresUrl(pg_url)), open_store(PostgresUrl(pg_url))
    owner, first = Owner.this_process(), T0 + timedelta(hours=1)
    claimed = engine.claim_due(recorder, first, awake_since=T0, owner=owner)
    [claim] = claimed.claims
    done = Outcome("succeeded", first, first + timedelta(seconds=1), exit_code=0)
    recorded: list[object] = []
    with claimer.write():
        assert [job.name for job in claimer.due_jobs(first + timedelta(hours=1), 10)] == ["a"]
        writer = threading.Thread(
            target=lambda: recorded.append(engine.record_outcomes(recorder, [(claim, done)], first))
        )
        writer.start()
        time.sleep(0.3)  # a fixed sleep on purpose: the recording waits for the job's row
        claimer.add_event(EventType.JOB_CHANGED, first, job="a")  # the claim's events
    writer.join(20)
    assert recorded, "the recording failed"
    run = recorder.get_run(claim.run_id)
    assert run is not None and run.status == "succeeded"
    claimer.close()
    recorder.close()
