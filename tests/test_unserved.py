"""A queue no live daemon fires: the sweep records its passed slots `missed`, one row per
spell (later sweeps and the returning daemon's gap walk extend it), and two sweepers never
record a slot twice. Time is a parameter here; tests/test_fleet.py runs real daemons."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobctl import engine
from jobctl.catalog import insert_job
from jobctl.engine.unserved import Sweep, _miss_passed_slots, sweep_unserved
from jobctl.job_changes import build_job
from jobctl.models import DaemonEntry, JobChange, Owner, RunSelection, RunStatus
from jobctl.paths import DbLocation, PostgresUrl
from jobctl.store import Store, open_store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
OWNER = Owner(4242, "h")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _setup(store: Store) -> None:
    """`train` on gpu and `plain` on default, every 10 s from T0; a live daemon fires only
    default (its lease holds for an hour)."""
    with store.write():
        for name, queue in (("train", "gpu"), ("plain", "default")):
            change = JobChange(
                name=name, url="http://127.0.0.1:9/", every="10s", timezone="UTC", queue=queue
            )
            insert_job(store, build_job(change, existing=None, now=T0), T0)
    _join(store, "default", T0)


def _join(store: Store, queue: str, started: datetime) -> None:
    """A daemon firing `queue` joins at `started`, its lease holding for an hour."""
    store.daemon_join(
        DaemonEntry(
            id=f"d-{queue}",
            host="h",
            pid=1,
            queues=(queue,),
            started_at=started,
            last_beat_at=started,
            lease_until=at(3600),
        )
    )


def _missed(store: Store, name: str) -> list[dict[str, Any]]:
    job = store.job_named(name)
    assert job is not None
    runs = store.list_runs(RunSelection(job_id=job.id, statuses=(RunStatus.MISSED,)))
    return [{"error": run.error, **json.loads(run.details or "{}")} for run in reversed(runs)]


@pytest.fixture
def store(store_at: DbLocation) -> Any:
    opened = open_store(store_at)
    _setup(opened)
    yield opened
    opened.close()


def test_one_row_per_spell_extended_by_sweeps_and_the_returning_daemon(store: Store) -> None:
    first = store.job_named("train")
    assert first is not None and first.next_run_at == at(10)
    # Not yet a lease old: nothing recorded, but the queue is named.
    early = sweep_unserved(store, at(35), LEASE)
    assert early.unserved == {"gpu": 1} and early.missed == []

    # Slots 10 .. 90 passed (100 is now: left to a daemon that may come).
    sweep = sweep_unserved(store, at(100), LEASE)
    assert [(name, count) for name, count, *_ in sweep.missed] == [("train", 9)]
    [row] = _missed(store, "train")
    assert (row["missed_count"], row["missed_until"], row["unserved_queue"]) == (
        9,
        "2026-03-01T12:01:30Z",
        "gpu",
    )
    assert row["error"] == (
        "missed 9 slots from 2026-03-01T12:00:10Z to 2026-03-01T12:01:30Z: "
        "no daemon serves queue gpu"
    )
    train = store.job_named("train")
    assert train is not None and train.next_run_at == at(100)
    assert _missed(store, "plain") == []  # its queue is served

    # A second sweeper at the same moment finds nothing left to record.
    assert sweep_unserved(store, at(100), LEASE).missed == []
    # A later sweep extends the same row: 100 .. 190.
    sweep_unserved(store, at(200), LEASE)
    [row] = _missed(store, "train")
    assert (row["missed_count"], row["missed_until"]) == (19, "2026-03-01T12:03:10Z")
    assert row["error"].startswith("missed 19 slots from 2026-03-01T12:00:10Z to ")

    # A daemon for gpu comes back at 215: its gap walk fires the latest slot (210) as a
    # catch-up and counts 200 into the same row.
    _join(store, "gpu", at(215))
    step = engine.claim_due(store, at(215), awake_since=at(215), owner=OWNER, queues=("gpu",))
    assert [(c.job.name, c.trigger, c.scheduled_for) for c in step.claims] == [
        ("train", "catchup", at(210))
    ]
    [row] = _missed(store, "train")
    assert (row["missed_count"], row["missed_until"]) == (20, "2026-03-01T12:03:20Z")
    train = store.job_named("train")
    assert train is not None and train.runs_missed == 20
    # the event stream tells of the row each time it grows (same run, its new count)
    told = [e for e in store.events_after() if e.type == "run.missed" and e.job == "train"]
    assert [e.data["missed_count"] for e in told] == [9, 19, 20]
    assert len({e.run for e in told}) == 1
    assert {e.data["scheduled_for"] for e in told} == {"2026-03-01T12:00:10Z"}
    # Served again: later sweeps record nothing, and a new spell starts a new row.
    assert sweep_unserved(store, at(400), LEASE) == Sweep(unserved={}, missed=[])


def test_a_job_moved_on_by_another_sweeper_is_not_recorded_again(store: Store) -> None:
    stale = store.job_named("train")
    assert stale is not None
    sweep_unserved(store, at(100), LEASE)
    late = Sweep()
    with store.write():  # a sweeper that read the job before the first moved it on
        _miss_passed_slots(store, stale, at(100), late)
    assert late.missed == []
    [row] = _missed(store, "train")
    assert row["missed_count"] == 9


def test_a_new_spell_after_fires_starts_a_new_row(store: Store) -> None:
    sweep_unserved(store, at(100), LEASE)
    engine.claim_due(store, at(100), awake_since=at(100), owner=OWNER, queues=("gpu",))
    sweep_unserved(store, at(200), LEASE)  # fired at 100: 110 .. 190 is another spell
    rows = _missed(store, "train")
    assert [(row["missed_count"], row["missed_until"]) for row in rows] == [
        (9, "2026-03-01T12:01:30Z"),
        (9, "2026-03-01T12:03:10Z"),
    ]


def test_a_job_another_sweeper_holds_is_passed_over_not_waited_for(pg_url: str) -> None:
    import psycopg

    store = open_store(PostgresUrl(pg_url))
    try:
        _setup(store)
        with psycopg.connect(pg_url) as other:  # another sweeper, mid-transaction
            other.execute("SELECT id FROM jobs WHERE name = 'train' FOR UPDATE")
            assert sweep_unserved(store, at(100), LEASE).missed == []
        assert [name for name, *_ in sweep_unserved(store, at(100), LEASE).missed] == ["train"]
    finally:
        store.close()


def test_a_sweep_takes_a_big_queue_in_batches(store: Store) -> None:
    with store.write():
        for index in range(4):
            change = JobChange(
                name=f"more-{index}",
                url="http://127.0.0.1:9/",
                every="10s",
                timezone="UTC",
                queue="gpu",
            )
            insert_job(store, build_job(change, existing=None, now=T0), T0)
    sweep = sweep_unserved(store, at(100), LEASE, limit=2)
    assert sorted(name for name, *_ in sweep.missed) == [
        "more-0",
        "more-1",
        "more-2",
        "more-3",
        "train",
    ]
    assert sweep_unserved(store, at(100), LEASE, limit=2, batches=1).missed == []
