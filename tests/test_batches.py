"""The daemon's path claims and records a batch in a constant number of statements, on both
stores, with the same rows, events and counters as one at a time."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from jobctl import engine
from jobctl.actions import Outcome
from jobctl.models import EventType, JobAdvance, NewRun, Owner, RunStatus, RunTrigger
from jobctl.paths import DbLocation, PostgresUrl
from jobctl.store import SqliteStore, Store, open_store
from tests.test_engine_step import add

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
OWNER = Owner.this_process()


@pytest.fixture
def store(store_at: DbLocation) -> Store:
    return open_store(store_at)


def job_id(store: Store, name: str) -> int:
    job = store.job_named(name)
    assert job is not None and job.id is not None
    return job.id


def skipped_row(
    store: Store, name: str, slot: datetime, status: RunStatus = RunStatus.SKIPPED
) -> int:
    """A skipped row (or one of `status`) of `name`'s scheduled `slot`, written before any
    claim."""
    with store.write():
        return store.insert_run(
            job_id=job_id(store, name),
            trigger=RunTrigger.SCHEDULE,
            status=status,
            scheduled_for=slot,
            now=slot,
        )


def outcome(claim: engine.Claim, status: str, at: datetime) -> Outcome:
    return Outcome(
        status=status,
        started_at=at,
        finished_at=at + timedelta(milliseconds=5),
        exit_code=0 if status == "succeeded" else 1,
        error=None if status == "succeeded" else "exit 1",
    )


def statements(store: SqliteStore, jobs: int) -> tuple[int, int, int]:
    """Statements of a claim step of `jobs` due jobs, of recording them, and of the next
    second's claim that skips them all (overlap skip)."""
    for index in range(jobs):
        add(store, f"j{index:03d}", every="1s")
    traced: list[str] = []
    store.conn.set_trace_callback(traced.append)
    now = T0 + timedelta(seconds=1)
    claimed = engine.claim_due(store, now, awake_since=T0, owner=OWNER)
    claim = len(traced)
    skipped = engine.claim_due(store, now + timedelta(seconds=1), awake_since=T0, owner=OWNER)
    skip = len(traced) - claim
    assert len(claimed.claims) == len(skipped.skipped) == jobs
    finished = [
        (c, outcome(c, "succeeded" if n % 2 else "failed", now))
        for n, c in enumerate(claimed.claims)
    ]
    engine.record_outcomes(store, finished, now)
    store.conn.set_trace_callback(None)
    return claim, len(traced) - claim - skip, skip


def test_claiming_recording_and_skipping_take_as_many_statements_for_50_jobs_as_for_2(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    counts = []
    for jobs in (2, 50):
        store = open_store(tmp_path_factory.mktemp(f"n{jobs}") / "jobctl.db")
        assert isinstance(store, SqliteStore)
        counts.append(statements(store, jobs))
    assert counts[0] == counts[1]


def test_a_batch_writes_the_rows_events_and_counters_of_one_fire_at_a_time(store: Store) -> None:
    for name in ("a", "b", "c"):
        add(store, name, every="1m", overlap="skip")
    now = T0 + timedelta(minutes=1)
    claimed = engine.claim_due(store, now, awake_since=T0, owner=OWNER)
    assert [c.job.name for c in claimed.claims] == ["a", "b", "c"]
    runs = store.runs_by_id(c.run_id for c in claimed.claims)
    assert {(run.id, run.job_id) for run in runs} == {
        (c.run_id, job_id(store, c.job.name)) for c in claimed.claims
    }
    skipped = engine.claim_due(store, now + timedelta(minutes=1), awake_since=T0, owner=OWNER)
    assert [name for name, _slot, _trigger in skipped.skipped] == ["a", "b", "c"]
    mark = store.last_event_id()
    statuses = {"a": "succeeded", "b": "failed", "c": "succeeded"}
    engine.record_outcomes(
        store, [(c, outcome(c, statuses[c.job.name], now)) for c in claimed.claims], now
    )
    events = store.events_after(mark)
    assert [(e.type, e.job, e.data["status"]) for e in events] == [
        (EventType.RUN_FINISHED, "a", "succeeded"),
        (EventType.RUN_FINISHED, "b", "failed"),
        (EventType.RUN_FINISHED, "c", "succeeded"),
    ]
    assert events[1].data == {
        "status": "failed",
        "duration_ms": 5,
        "exit_code": 1,
        "http_status": None,
        "error": "exit 1",
    }
    b = store.job_named("b")
    assert b is not None
    assert (b.runs_total, b.runs_failed, b.runs_skipped, b.consecutive_failures) == (1, 1, 1, 1)
    assert b.last_status == "failed" and b.last_run_at == now


def test_a_job_twice_in_one_batch_counts_as_recorded_one_by_one(
    store: Store, tmp_path_factory: pytest.TempPathFactory
) -> None:
    add(store, "twice", every="1m", overlap="allow")
    first = engine.claim_due(store, T0 + timedelta(minutes=1), awake_since=T0, owner=OWNER)
    second = engine.claim_due(store, T0 + timedelta(minutes=2), awake_since=T0, owner=OWNER)
    early, late = first.claims[0], second.claims[0]
    at = T0 + timedelta(minutes=2)
    # The later run fails first in the batch; the earlier one, recorded after it, succeeded.
    engine.record_outcomes(
        store,
        [
            (late, outcome(late, "failed", T0 + timedelta(minutes=2))),
            (early, outcome(early, "succeeded", T0 + timedelta(minutes=1))),
        ],
        at,
    )
    job = store.job_named("twice")
    assert job is not None
    assert (job.runs_total, job.runs_succeeded, job.runs_failed) == (2, 1, 1)
    # one by one: the failure counted (1 in a row), then the success reset it to 0; the
    # last status is the later run's
    assert job.consecutive_failures == 0
    assert job.last_status == "failed"
    assert job.last_run_at == T0 + timedelta(minutes=2)
    assert job.last_success_at == T0 + timedelta(minutes=1)


def test_a_job_moved_on_meanwhile_writes_nothing_and_the_others_are_claimed(
    store: Store,
) -> None:
    add(store, "mine", every="1m")
    add(store, "theirs", every="1m")
    now = T0 + timedelta(minutes=1)
    with store.write():
        moved = store.advance_jobs(
            [
                JobAdvance(job_id(store, "mine"), now, now + timedelta(minutes=1), now, "enabled"),
                # claimed at a slot it is no longer at: another daemon moved it on
                JobAdvance(job_id(store, "theirs"), T0, now, T0, "enabled"),
            ]
        )
    assert moved == {job_id(store, "mine")}
    claimed = engine.claim_due(store, now, awake_since=T0, owner=OWNER)
    assert [c.job.name for c in claimed.claims] == ["theirs"]
    assert store.newest_run_id() == claimed.claims[0].run_id


def test_inserted_rows_get_their_ids_in_order(store: Store) -> None:
    for name in ("x", "y"):
        add(store, name, every="1m")
    x, y = job_id(store, "x"), job_id(store, "y")
    slot = T0 + timedelta(minutes=1)
    new = [
        NewRun(y, RunTrigger.SCHEDULE, RunStatus.RUNNING, slot, owner=OWNER),
        NewRun(x, RunTrigger.SCHEDULE, RunStatus.SKIPPED, slot, error="skipped: " + "e" * 600),
        NewRun(x, RunTrigger.MANUAL, RunStatus.QUEUED, slot, due_at=slot),
        NewRun(y, RunTrigger.CATCHUP, RunStatus.RUNNING, T0, owner=OWNER, attempt=2),
    ]
    mark = store.last_event_id()
    with store.write():
        ids = store.insert_runs(new, slot)
    runs = {run.id: run for run in store.runs_by_id(ids)}
    assert [(runs[i].job_id, runs[i].status, runs[i].trigger, runs[i].attempt) for i in ids] == [
        (n.job_id, n.status, n.trigger, n.attempt) for n in new
    ]
    assert runs[ids[0]].started_at == slot and runs[ids[1]].finished_at == slot
    events = store.events_after(mark)
    assert [(e.type, e.run) for e in events] == [
        (EventType.RUN_STARTED, ids[0]),
        (EventType.RUN_SKIPPED, ids[1]),
        (EventType.RUN_STARTED, ids[3]),
    ]
    assert events[0].data == {
        "trigger": "schedule",
        "attempt": 1,
        "scheduled_for": "2026-06-01T12:01:00Z",
    }
    assert events[1].data["error"] == "skipped: " + "e" * 488 + "..."
    assert events[2].data["scheduled_for"] == "2026-06-01T12:00:00Z"


def test_a_slot_with_a_row_already_is_not_written_again_and_the_others_are_claimed(
    store: Store,
) -> None:
    # b's slot has its row already (here skipped, so nothing of b is in flight and the
    # step claims that slot): the unique index on the slot must not fail the whole step.
    for name in ("a", "b", "c"):
        add(store, name, every="1m")
    slot = T0 + timedelta(minutes=1)
    before = skipped_row(store, "b", slot)
    mark = store.last_event_id()
    step = engine.claim_due(store, slot, awake_since=T0, owner=OWNER)
    assert [c.job.name for c in step.claims] == ["a", "c"]
    assert step.already == [("b", slot)]
    b = store.job_named("b")
    assert b is not None and b.next_run_at == slot + timedelta(minutes=1)
    runs = store.runs_by_id(range(1, store.newest_run_id() + 1))
    assert [(run.id, run.job_id, run.status) for run in runs] == [
        (before, job_id(store, "b"), "skipped"),
        (step.claims[0].run_id, job_id(store, "a"), "running"),
        (step.claims[1].run_id, job_id(store, "c"), "running"),
    ]
    assert [e.run for e in store.events_after(mark)] == [c.run_id for c in step.claims]
    # the next slot is claimed as usual
    next_step = engine.claim_due(store, slot + timedelta(minutes=1), awake_since=T0, owner=OWNER)
    assert [c.job.name for c in next_step.claims] == ["b"]  # a and c: their runs in flight


def schema_before_the_slot_index_by_time(where: DbLocation) -> None:
    """An empty database in the schema before runs_one_per_slot was keyed by slot first
    (SQLite's 16 migrations, PostgreSQL's 5)."""
    if isinstance(where, PostgresUrl):
        import psycopg

        from jobctl.store.postgres import migrations as pg

        with psycopg.connect(where.url) as conn:
            pg.migrate(conn, pg.MIGRATIONS[:5])
        return
    from jobctl.store.sqlite import migrations as lite

    conn = sqlite3.connect(where, isolation_level=None)
    lite.migrate(conn, lite.MIGRATIONS[:16])
    conn.close()


def slot_index(store: Store) -> tuple[list[str], str]:
    """runs_one_per_slot's columns, in order, and its definition."""
    if isinstance(store, SqliteStore):
        conn = store.conn
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'runs_one_per_slot'"
        ).fetchone()
        columns = [row[2] for row in conn.execute("PRAGMA index_info(runs_one_per_slot)")]
        return columns, " ".join(sql.split())
    row = store.conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'runs_one_per_slot'"
    ).fetchone()
    assert row is not None
    definition = str(row[0])
    return definition.split("(", 1)[1].split(")", 1)[0].split(", "), definition


def test_an_upgraded_database_keys_the_slot_index_by_slot_and_still_passes_over_a_taken_slot(
    store_at: DbLocation,
) -> None:
    # The per-fire writes of runs_one_per_slot fall on a few pages of recent slots, not one
    # per job; the same unique columns and predicate, which the claim's ON CONFLICT names.
    schema_before_the_slot_index_by_time(store_at)
    store = open_store(store_at)
    columns, definition = slot_index(store)
    assert columns == ["scheduled_for", "job_id", "trigger", "attempt"]
    assert "UNIQUE INDEX runs_one_per_slot" in definition
    assert definition.replace("'::text", "'").endswith(
        "'schedule', 'catchup', 'retry'])) AND (status <> 'missed'))"
        if isinstance(store_at, PostgresUrl)
        else "WHERE trigger IN ('schedule', 'catchup', 'retry') AND status != 'missed'"
    ), definition
    for name in ("a", "b"):
        add(store, name, every="1m")
    slot = T0 + timedelta(minutes=1)
    skipped_row(store, "b", slot)
    step = engine.claim_due(store, slot, awake_since=T0, owner=OWNER)
    assert [c.job.name for c in step.claims] == ["a"]
    assert step.already == [("b", slot)]
    # a second row of a fired slot is refused; a missed row (the predicate) is not
    refused = r"runs_one_per_slot|UNIQUE constraint failed: runs\.scheduled_for, runs\.job_id"
    with pytest.raises(Exception, match=refused):
        skipped_row(store, "a", slot, RunStatus.RUNNING)
    skipped_row(store, "a", slot, RunStatus.MISSED)
    store.close()


def test_a_clash_on_another_unique_key_than_the_slot_is_not_taken_for_a_slot_fired(
    pg_url: str,
) -> None:
    # Only the one-run-per-slot index means "fired before": here the runs' id identity is
    # behind the ids in the table (a hand restore), so a's new row's id clashes with a's
    # earlier row. The step must fail as before (and move no job on), not drop a's slot.
    import psycopg

    from jobctl.paths import PostgresUrl

    store = open_store(PostgresUrl(pg_url))
    try:
        for name in ("a", "b"):
            add(store, name, every="1m")
        slot = T0 + timedelta(minutes=1)
        taken = skipped_row(store, "a", T0)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE runs ALTER COLUMN id RESTART WITH {taken}")
        with pytest.raises(Exception, match="runs_pkey"):
            engine.claim_due(store, slot, awake_since=T0, owner=OWNER)
        a = store.job_named("a")
        assert a is not None and a.next_run_at == slot  # not moved on: fired on the next try
        assert [run.id for run in store.runs_by_id(range(1, taken + 5))] == [taken]
    finally:
        store.close()
