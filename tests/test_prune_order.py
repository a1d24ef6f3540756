"""`runs prune` of every job in one walk of the ids: the same runs go as job by job."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from jobctl import engine, history, pruning
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
