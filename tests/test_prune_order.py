"""`runs prune` of every job in one walk of the ids: the same runs go as job by job."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from jobctl import engine, history, pruning
from jobctl.catalog import insert_job
from jobctl.job_changes import build_job
from jobctl.models import JobChange, RunSelection, RunStatus, RunTrigger
from jobctl.paths import DbLocation
from jobctl.store import open_store
from tests.conftest import Invoke
from tests.realparts import query
from tests.test_history import OWNER, T0, fill

NOW = T0 + timedelta(days=2)


@pytest.fixture
def mixed_db(db_path: Path, jobctl: Invoke) -> Path:
    """Three jobs taking turns (rows spread over the table), one with its own --keep, one
    with --keep-for, and a run in flight of each."""
    fill(db_path, jobctl, {"alpha": ["succeeded", "failed"] * 4, "beta": ["succeeded"] * 6})
    fill(db_path, jobctl, {"gamma": ["succeeded"] * 5}, start=T0 + timedelta(days=1, hours=23))
    jobctl("edit", "alpha", "--keep", "3")
    jobctl("edit", "gamma", "--keep-for", "30m")
    store = open_store(db_path)
    store.conn.execute("UPDATE jobs SET next_run_at = ?", ("2026-06-03T11:59:00.000000Z",))
    claimed = engine.claim_due(store, NOW, awake_since=NOW, owner=OWNER).claims
    assert len(claimed) == 3  # in flight: never pruned
    store.close()
    return db_path


def _copy(source: Path, target: Path) -> Path:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def _left(db: Path) -> list[int]:
    return [row[0] for row in query(db, "SELECT id FROM runs ORDER BY id")]


@pytest.mark.parametrize(
    ("keep", "older_than"),
    [(2, None), (0, None), (None, timedelta(days=1)), (4, timedelta(hours=1)), (None, None)],
)
def test_id_order_removes_what_job_by_job_removes(
    mixed_db: Path, tmp_path: Path, keep: int | None, older_than: timedelta | None
) -> None:
    by_job, by_id = _copy(mixed_db, tmp_path / "a.db"), _copy(mixed_db, tmp_path / "b.db")
    store = open_store(by_job)
    old = sum(history.prune_runs(store, NOW, keep=keep, older_than=older_than))
    store.close()
    store = open_store(by_id)
    batches = list(pruning.prune_all(store, NOW, keep=keep, older_than=older_than, batch=2))
    store.close()
    assert old > 0 and sum(batch.removed for batch in batches) == old
    assert all(batch.removed <= 2 for batch in batches) and len(batches) >= old // 2
    assert [b.last_id for b in batches] == sorted({b.last_id for b in batches})  # id order
    assert _left(by_id) == _left(by_job)
    running = query(by_id, "SELECT count(*) FROM runs WHERE status = 'running'")[0][0]
    assert running == 3


def test_prune_all_of_nothing(db_path: Path) -> None:
    store = open_store(db_path)
    assert list(pruning.prune_all(store, NOW, keep=0)) == []
    assert store.run_id_span() is None


def test_prune_all_on_both_stores(store_at: DbLocation) -> None:
    """Jobs taking turns and a run in flight: the newest two of each job and
    the run in flight stay, batch by batch in id order; then --older-than takes the rest."""
    store = open_store(store_at)
    jobs: dict[str, int] = {}
    with store.write():
        for name in ("a", "b", "c"):
            change = JobChange(name=name, url="http://127.0.0.1:9/x", every="1m", timezone="UTC")
            job = insert_job(store, build_job(change, existing=None, now=T0), T0)
            assert job.id is not None
            jobs[name] = job.id
        ids: dict[str, list[int]] = {name: [] for name in jobs}
        for minute in range(5):
            for name, job_id in jobs.items():
                status = RunStatus.RUNNING if (name, minute) == ("b", 0) else RunStatus.SUCCEEDED
                moment = T0 + timedelta(minutes=minute)
                ids[name].append(
                    store.insert_run(
                        job_id=job_id,
                        trigger=RunTrigger.MANUAL,
                        status=status,
                        scheduled_for=moment,
                        now=moment,
                        owner=OWNER,
                    )
                )
    batches = list(pruning.prune_all(store, NOW, keep=2, batch=2))
    assert sum(b.removed for b in batches) == 8  # 3 of a, 3 of c, 2 of b (its first runs)
    assert [b.last_id for b in batches] == sorted(b.last_id for b in batches)
    left = {run.id for run in store.list_runs(RunSelection(limit=100))}
    assert left == {*ids["a"][-2:], *ids["b"][-2:], ids["b"][0], *ids["c"][-2:]}
    assert store.run_id_span() == (ids["b"][0], ids["c"][-1])
    assert sum(b.removed for b in pruning.prune_all(store, NOW, older_than=timedelta(0))) == 6
    assert store.run_id_span() == (ids["b"][0], ids["b"][0])  # in flight: kept
