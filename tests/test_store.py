"""The store's named operations, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from jobctl.catalog import insert_job
from jobctl.job_changes import build_job
from jobctl.models import JobChange, NotifyTarget, RunExecuted, RunStatus, RunTrigger
from jobctl.paths import DbLocation, PostgresUrl
from jobctl.store import SqliteStore, Store, open_store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_jobs_due_for_alert_reads_the_policy_not_the_text(store_at: DbLocation) -> None:
    store = open_store(store_at)
    entries = {
        "watched": JobChange(
            policies={"alert_if_no_success": "1h"},
            notify=(NotifyTarget("failure", "http://127.0.0.1:9/alert"),),
        ),
        # Its policies mention the word, in a URL, without the policy: a LIKE matched it.
        "other": JobChange(
            notify=(NotifyTarget("failure", "http://127.0.0.1:9/alert_if_no_success"),)
        ),
    }
    with store.write():
        for name, extra in entries.items():
            change = replace(
                extra, name=name, url="http://127.0.0.1:9/x", every="1m", timezone="UTC"
            )
            job = build_job(change, existing=None, now=T0)
            insert_job(store, job, T0)
    assert [job.name for job in store.jobs_due_for_alert()] == ["watched"]
    watched = store.jobs_due_for_alert()[0]
    assert watched.id is not None
    store.mark_alerted(watched.id, T0)
    assert store.jobs_due_for_alert() == []


def test_an_upgraded_database_indexes_the_jobs_a_dead_man_alert_watches(
    store_at: DbLocation,
) -> None:
    """Migration 18 (PostgreSQL 7) indexes the jobs with an `--alert-if-no-success` window
    not alerted yet, those already stored included; the daemon's look for them every 10 s
    reads that index (SQLite's plan), not every job, and a success puts a job back in."""
    store = open_store(store_at)
    policy = {"alert_if_no_success": "1h"}
    with store.write():
        for name, policies in (("watched", policy), ("alerted", policy), ("plain", {})):
            change = JobChange(
                name=name, url="http://127.0.0.1:9/x", every="1m", timezone="UTC",
                policies=policies, notify=(NotifyTarget("failure", "http://127.0.0.1:9/a"),),
            )  # fmt: skip
            insert_job(store, build_job(change, existing=None, now=T0), T0)
    alerted = store.job_named("alerted")
    assert alerted is not None and alerted.id is not None
    store.mark_alerted(alerted.id, T0)
    _back_to_the_schema_before_the_dead_man_index(store, store_at)
    store = open_store(store_at)  # migrates again
    assert [job.name for job in store.jobs_due_for_alert()] == ["watched"]
    if isinstance(store, SqliteStore):
        asked: list[str] = []
        store.conn.set_trace_callback(asked.append)
        store.jobs_due_for_alert()
        store.conn.set_trace_callback(None)
        (statement,) = asked
        plan = " ".join(row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
        assert "INDEX jobs_alert_watch" in plan, plan
    with store.write():  # a success re-arms the alert
        store.count_executed_runs([RunExecuted(alerted.id, RunStatus.SUCCEEDED, T0, True)])
    assert sorted(job.name for job in store.jobs_due_for_alert()) == ["alerted", "watched"]
    store.close()


def test_a_job_whose_policies_are_not_json_still_has_its_runs_counted(
    store_at: DbLocation,
) -> None:
    """A row edited by hand into bad JSON: the dead-man index (its condition is read on
    every write of alerted_at, which each run's counting does) must not make the counting
    of that job's runs, or the look for watched jobs, fail."""
    store = open_store(store_at)
    change = JobChange(name="odd", url="http://127.0.0.1:9/x", every="1m", timezone="UTC")
    with store.write():
        insert_job(store, build_job(change, existing=None, now=T0), T0)
    odd = store.job_named("odd")
    assert odd is not None and odd.id is not None
    with store.write():
        store.conn.execute("UPDATE jobs SET policies = '{not json' WHERE name = 'odd'")
        store.count_executed_runs([RunExecuted(odd.id, RunStatus.SUCCEEDED, T0, True)])
    assert store.jobs_due_for_alert() == []
    row = store.conn.execute("SELECT runs_succeeded FROM jobs WHERE name = 'odd'").fetchone()
    assert row is not None and row[0] == 1
    store.close()


def _back_to_the_schema_before_the_dead_man_index(store: Store, where: DbLocation) -> None:
    """The database as the version before the index left it: index dropped, version back."""
    with store.write():
        store.conn.execute("DROP INDEX jobs_alert_watch")
        if isinstance(where, PostgresUrl):
            store.conn.execute("UPDATE jobctl_schema SET version = 6")
    if not isinstance(where, PostgresUrl):
        store.conn.execute("PRAGMA user_version = 17")
    store.close()


def test_heartbeat_row_round_trip(store_at: DbLocation) -> None:
    store = open_store(store_at)
    assert store.daemon_row() is None
    store.heartbeat_start(
        pid=42, host="h", started_at=T0, now=T0, listen="http://127.0.0.1:1", log_file=None
    )
    store.heartbeat(T0 + timedelta(seconds=5))
    row = store.daemon_row()
    assert row is not None
    assert (row.pid, row.host, row.listen, row.stopped_at) == (42, "h", "http://127.0.0.1:1", None)
    assert row.last_tick_at == T0 + timedelta(seconds=5)
    with store.write():
        store.heartbeat_stop(T0 + timedelta(seconds=9))
    row = store.daemon_row()
    assert row is not None and row.stopped_at == T0 + timedelta(seconds=9)


def test_get_run_returns_a_typed_run(store_at: DbLocation) -> None:
    from jobctl.models import Owner

    store = open_store(store_at)
    with store.write():
        job = insert_job(
            store,
            build_job(
                JobChange(name="a", url="http://127.0.0.1:9/x", every="1m", timezone="UTC"),
                existing=None,
                now=T0,
            ),
            T0,
        )
        assert job.id is not None
        run_id = store.insert_run(
            job_id=job.id,
            trigger=RunTrigger.MANUAL,
            status=RunStatus.RUNNING,
            scheduled_for=T0,
            now=T0,
            owner=Owner(7, "h"),
        )
    run = store.get_run(run_id)
    assert run is not None
    assert (run.job, run.trigger, run.status, run.started_at) == ("a", "manual", "running", T0)
    assert run.started_at is not None and run.started_at.tzinfo is not None
    assert store.running_run_ids(7, "h") == [run_id]
    assert store.get_run(run_id + 1) is None


def test_recent_outcomes_of_many_jobs_in_one_read(store_at: DbLocation) -> None:
    from jobctl.models import Owner

    store = open_store(store_at)
    statuses = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.RUNNING]
    counts = {"busy": 7, "quiet": 2, "idle": 0, "other": 3}
    ids = {}
    with store.write():
        for name in counts:
            change = JobChange(name=name, url="http://127.0.0.1:9/x", every="1m", timezone="UTC")
            job = insert_job(store, build_job(change, existing=None, now=T0), T0)
            assert job.id is not None
            ids[name] = job.id
        for n in range(12):  # interleaved, so that a job's runs are not one block of ids
            for name, runs in counts.items():
                if n < runs:
                    store.insert_run(
                        job_id=ids[name],
                        trigger=RunTrigger.SCHEDULE,
                        status=statuses[(n + len(name)) % 4],
                        scheduled_for=T0 + timedelta(minutes=n),
                        now=T0,
                        owner=Owner(7, "h"),
                    )
        store.conn.execute("UPDATE runs SET duration_ms = id * 10 WHERE status <> 'running'")
    wanted = [ids["busy"], ids["quiet"], ids["idle"]]
    together = store.recent_outcomes_by_job(wanted, 5)
    assert together == {
        ids[name]: store.recent_outcomes(ids[name], 5) for name in ("busy", "quiet")
    }
    assert len(together[ids["busy"]]) == 5 and len(together[ids["quiet"]]) == 2
    assert (RunStatus.RUNNING, None) in together[ids["busy"]]  # no duration yet
    assert store.recent_outcomes_by_job([], 5) == {}
