"""`runs prune` of every job in one walk of the ids: the same runs go as job by job."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
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
from tests.realparts import ROOT, jobctl_command, query, run_jobctl, wait_until
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


def test_the_walk_sets_its_connection_for_deletes_and_back(mixed_db: Path) -> None:
    store = open_store(mixed_db)
    settings = ("secure_delete", "wal_autocheckpoint", "cache_size")

    def now_set() -> list[int]:
        return [store.conn.execute(f"PRAGMA {name}").fetchone()[0] for name in settings]

    before = now_set()
    during = [now_set() for _ in pruning.prune_all(store, NOW, keep=1, batch=1)]
    assert during and all(values == [2, 10_000, -128 * 1024] for values in during)
    assert now_set() == before != during[0]
    store.close()


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


RUNS_TO_KILL_IN = 1_200_000


def _bulk_history(db: Path, runs: int) -> None:
    """Four jobs taking turns over `runs` finished runs (every 7th with output), written
    straight into the schema: a history big enough for a prune of many batches."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
            "INSERT INTO runs (job_id, trigger, status, scheduled_for, started_at, "
            "finished_at, duration_ms, output, created_at) "
            "SELECT 1 + x % 4, 'schedule', 'succeeded', t, t, t, 5, 'ok', t FROM "
            "(SELECT x, strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2026-01-01', "
            "'+' || x || ' seconds') AS t FROM n)",
            (runs,),
        )
        conn.execute(
            "INSERT INTO run_output (run_id, seq, stream, at, text) "
            "SELECT id, 1, 'stdout', created_at, 'line' FROM runs WHERE id % 7 = 0"
        )
    conn.close()


def test_a_prune_killed_midway_leaves_a_sound_database_and_finishes_when_run_again(
    db_path: Path, jobctl: Invoke
) -> None:
    for name in ("a", "b", "c", "d"):
        jobctl("add", name, "--exec", "true", "--every", "1h")
    # Big enough that the prune is still going after its first batch and a writer's turn
    # (400,000 runs took ~1.5 s to prune: on a fast day it was over before the kill).
    _bulk_history(db_path, RUNS_TO_KILL_IN)
    kept = {
        row[0]
        for job_id in range(1, 5)
        for row in query(
            db_path, "SELECT id FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT 10", job_id
        )
    }
    prune = subprocess.Popen(
        jobctl_command("runs", "prune", "--keep", "10"),
        env={**os.environ, "JOBCTL_DB": str(db_path), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: query(db_path, "SELECT min(id) FROM runs")[0][0] > 1, 60, "a batch")
        # Another writer (a daemon) gets its turn between two batches.
        writer = sqlite3.connect(db_path, timeout=10, isolation_level=None)
        started = time.monotonic()
        writer.execute("UPDATE jobs SET description = 'written meanwhile' WHERE name = 'a'")
        waited = time.monotonic() - started
        writer.close()
        assert prune.poll() is None, "the prune ended before it could be killed"
        prune.send_signal(signal.SIGKILL)
        assert prune.wait(timeout=30) == -signal.SIGKILL
    finally:
        if prune.poll() is None:
            prune.kill()
            prune.wait()
    assert waited < 5, f"a writer waited {waited:.1f}s for the prune"
    assert query(db_path, "PRAGMA integrity_check")[0][0] == "ok"
    assert query(db_path, "PRAGMA foreign_key_check") == []
    left = query(db_path, "SELECT count(*) FROM runs")[0][0]
    assert len(kept) < left < RUNS_TO_KILL_IN  # killed halfway: part of it done, whole batches
    again = run_jobctl(db_path, "runs", "prune", "--keep", "10")
    assert again.returncode == 0 and again.stdout == f"removed {left - len(kept)} runs\n"
    assert set(_left(db_path)) == kept
    orphans = "SELECT count(*) FROM run_output WHERE run_id NOT IN (SELECT id FROM runs)"
    assert query(db_path, orphans)[0][0] == 0
    assert query(db_path, "SELECT description FROM jobs WHERE name = 'a'")[0][0] == (
        "written meanwhile"
    )
