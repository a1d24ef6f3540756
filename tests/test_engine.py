"""One scheduling step in-process, with time as a parameter: claims, gaps, overlap, records."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl import engine, runs
from jobctl.actions import Outcome
from jobctl.catalog import add_job, get_job
from jobctl.models import POLICY_NAMES, JobChange
from jobctl.store import SqliteStore
from jobctl.store import sqlite as db

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
OWNER = runs.Owner.this_process()


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return db.connect(tmp_path / "jobctl.db")


def add(conn: sqlite3.Connection, name: str, now: datetime = T0, **options: str) -> None:
    policies = {key: value for key, value in options.items() if key in POLICY_NAMES}
    fields = {key: value for key, value in options.items() if key not in POLICY_NAMES}
    change = JobChange(name=name, command="true", timezone="UTC", policies=policies, **fields)
    add_job(SqliteStore(conn), change, now)


def step(conn: sqlite3.Connection, now: datetime, awake_since: datetime = T0) -> engine.Step:
    return engine.claim_due(SqliteStore(conn), now, awake_since=awake_since, owner=OWNER)


def finish(conn: sqlite3.Connection, claim: engine.Claim, status: str, at: datetime) -> list:
    outcome = Outcome(
        status=status,
        started_at=claim.claimed_at,
        finished_at=at,
        exit_code=0 if status == "succeeded" else 1,
    )
    return engine.record_outcomes(SqliteStore(conn), [(claim, outcome)], at)


def rows(conn: sqlite3.Connection) -> list[tuple]:
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT trigger, status, attempt, scheduled_for FROM runs ORDER BY id"
        )
    ]


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_due_slot_is_claimed_once_and_the_next_one_computed(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1m")
    assert step(conn, T0 + timedelta(seconds=30)).claims == []
    claimed = step(conn, T0 + timedelta(minutes=1, milliseconds=5)).claims
    assert [(c.job.name, c.scheduled_for, c.trigger) for c in claimed] == [
        ("j", T0 + timedelta(minutes=1), "schedule")
    ]
    assert step(conn, T0 + timedelta(minutes=1, seconds=1)).claims == []
    assert get_job(SqliteStore(conn), "j").next_run_at == T0 + timedelta(minutes=2)
    assert rows(conn) == [("schedule", "running", 1, ts(T0 + timedelta(minutes=1)))]


def test_late_slots_seen_by_the_daemon_fire_late_not_missed(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1m", overlap="allow")
    claimed = step(conn, T0 + timedelta(minutes=3, seconds=10), awake_since=T0).claims
    assert [c.scheduled_for.minute for c in claimed] == [1, 2, 3]
    assert {c.trigger for c in claimed} == {"schedule"}
    add(conn, "k", every="1m")
    step(conn, T0 + timedelta(minutes=3, seconds=10), awake_since=T0)
    statuses = conn.execute(
        "SELECT status FROM runs JOIN jobs ON jobs.id = job_id WHERE name = 'k' ORDER BY runs.id"
    ).fetchall()
    assert [s[0] for s in statuses] == ["running", "skipped", "skipped"]


def test_overlap_skip_records_a_skipped_run(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1m")
    [first] = step(conn, T0 + timedelta(minutes=1)).claims
    assert step(conn, T0 + timedelta(minutes=2)).claims == []
    assert rows(conn)[1][:2] == ("schedule", "skipped")
    assert get_job(SqliteStore(conn), "j").runs_skipped == 1
    finish(conn, first, "succeeded", T0 + timedelta(minutes=2, seconds=1))
    assert len(step(conn, T0 + timedelta(minutes=3)).claims) == 1


def test_overlap_queue_keeps_one_waiting_run(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1m", overlap="queue")
    [first] = step(conn, T0 + timedelta(minutes=1)).claims
    step(conn, T0 + timedelta(minutes=2))
    step(conn, T0 + timedelta(minutes=3))
    assert [r[1] for r in rows(conn)] == ["running", "queued", "skipped"]
    finish(conn, first, "succeeded", T0 + timedelta(minutes=3, seconds=5))
    [queued] = step(conn, T0 + timedelta(minutes=3, seconds=6)).claims
    assert queued.scheduled_for == T0 + timedelta(minutes=2)


def test_overlap_allow_runs_side_by_side(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1m", overlap="allow")
    step(conn, T0 + timedelta(minutes=1))
    assert len(step(conn, T0 + timedelta(minutes=2)).claims) == 1


@pytest.mark.parametrize(
    ("policy", "catchups", "missed"),
    [
        ("latest", [59], 58),
        ("skip", [], 59),
        ("all", [1], 0),
    ],
)
def test_gap_while_down_gives_one_missed_row_and_catchup(
    conn: sqlite3.Connection, policy: str, catchups: list[int], missed: int
) -> None:
    add(conn, "j", every="1m", catchup=policy)
    restart = T0 + timedelta(minutes=59, seconds=30)
    result = step(conn, restart, awake_since=restart)
    assert [c.scheduled_for.minute for c in result.claims] == catchups
    assert {c.trigger for c in result.claims} <= {"catchup"}
    missed_rows = conn.execute("SELECT * FROM runs WHERE status = 'missed'").fetchall()
    if missed:
        [row] = missed_rows
        details = json.loads(row["details"])
        assert details["missed_count"] == missed
        assert row["scheduled_for"] == ts(T0 + timedelta(minutes=1))
        last = catchups[0] - 1 if catchups else 59
        assert details["missed_until"] == f"2026-06-01T12:{last:02d}:00Z"
        assert f"missed {missed} slots" in row["error"]
    else:
        assert missed_rows == []
    assert get_job(SqliteStore(conn), "j").runs_missed == missed
    assert get_job(SqliteStore(conn), "j").next_run_at == T0 + timedelta(minutes=60)
    if policy == "all":  # the rest wait their turn and start one after another
        queued = conn.execute(
            "SELECT scheduled_for FROM runs WHERE status = 'queued' "
            "AND trigger = 'catchup' ORDER BY id"
        ).fetchall()
        assert len(queued) == 58
        finish(conn, result.claims[0], "succeeded", restart + timedelta(seconds=1))
        [second] = step(conn, restart + timedelta(seconds=2), awake_since=restart).claims
        assert (second.trigger, second.scheduled_for) == ("catchup", T0 + timedelta(minutes=2))


def test_catchup_window_limits_what_fires(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1h", catchup_window="30m")
    restart = T0 + timedelta(hours=5, minutes=45)
    result = step(conn, restart, awake_since=restart)
    assert result.claims == []
    assert get_job(SqliteStore(conn), "j").runs_missed == 5


def test_long_gap_of_a_one_second_job_is_one_row(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1s")
    restart = T0 + timedelta(days=1)
    result = step(conn, restart, awake_since=restart)
    assert len(result.claims) == 1
    [count] = conn.execute("SELECT count(*) FROM runs WHERE status = 'missed'").fetchone()
    assert count == 1
    assert get_job(SqliteStore(conn), "j").runs_missed == 86_400 - 1 - 1


def test_cron_gap_is_counted(conn: sqlite3.Connection) -> None:
    add(conn, "c", cron="*/10 * * * *")
    restart = T0 + timedelta(hours=2, minutes=5)
    result = step(conn, restart, awake_since=restart)
    assert [c.scheduled_for for c in result.claims] == [T0 + timedelta(hours=2)]
    assert get_job(SqliteStore(conn), "c").runs_missed == 11


def test_one_shot_completes_after_it_fires(conn: sqlite3.Connection) -> None:
    add(conn, "once", at="2026-06-01T12:30:00Z")
    [claim] = step(conn, T0 + timedelta(minutes=30)).claims
    job = get_job(SqliteStore(conn), "once")
    assert (job.state, job.next_run_at) == ("completed", None)
    finish(conn, claim, "succeeded", T0 + timedelta(minutes=31))
    assert step(conn, T0 + timedelta(hours=1)).claims == []


def test_paused_jobs_are_not_claimed(conn: sqlite3.Connection) -> None:
    add(conn, "p", every="1m", state="paused")
    assert step(conn, T0 + timedelta(hours=1)).claims == []
    assert rows(conn) == []


def test_retry_is_queued_with_backoff_then_claimed(conn: sqlite3.Connection) -> None:
    add(conn, "r", every="1h", retries="2", backoff="10s")
    [claim] = step(conn, T0 + timedelta(hours=1)).claims
    [recorded] = finish(conn, claim, "failed", T0 + timedelta(hours=1, seconds=1))
    assert recorded.retry_at is not None
    delay = (recorded.retry_at - (T0 + timedelta(hours=1, seconds=1))).total_seconds()
    assert 8 <= delay <= 12
    assert step(conn, T0 + timedelta(hours=1, seconds=2)).claims == []
    [retry] = step(conn, recorded.retry_at + timedelta(milliseconds=1)).claims
    assert (retry.trigger, retry.attempt, retry.scheduled_for) == (
        "retry",
        2,
        T0 + timedelta(hours=1),
    )
    assert get_job(SqliteStore(conn), "r").consecutive_failures == 0  # not final yet


def test_auto_pause_after_failures_in_a_row(conn: sqlite3.Connection) -> None:
    add(conn, "f", every="1m", max_failures="2")
    for minute in (1, 2):
        [claim] = step(conn, T0 + timedelta(minutes=minute)).claims
        [recorded] = finish(conn, claim, "failed", T0 + timedelta(minutes=minute, seconds=1))
    assert recorded.auto_paused
    job = get_job(SqliteStore(conn), "f")
    assert job.state == "paused" and "2 failures in a row" in (job.paused_reason or "")
    assert job.next_run_at is None and job.runs_failed == 2


def test_auto_pause_after_one_failure_says_failure(conn: sqlite3.Connection) -> None:
    add(conn, "f", every="1m", max_failures="1")
    [claim] = step(conn, T0 + timedelta(minutes=1)).claims
    finish(conn, claim, "failed", T0 + timedelta(minutes=1, seconds=1))
    assert get_job(SqliteStore(conn), "f").paused_reason == "auto-paused after 1 failure in a row"


def test_success_resets_the_failure_count(conn: sqlite3.Connection) -> None:
    add(conn, "f", every="1m", max_failures="2")
    [claim] = step(conn, T0 + timedelta(minutes=1)).claims
    finish(conn, claim, "failed", T0 + timedelta(minutes=1, seconds=1))
    [claim] = step(conn, T0 + timedelta(minutes=2)).claims
    finish(conn, claim, "succeeded", T0 + timedelta(minutes=2, seconds=1))
    [claim] = step(conn, T0 + timedelta(minutes=3)).claims
    finish(conn, claim, "failed", T0 + timedelta(minutes=3, seconds=1))
    job = get_job(SqliteStore(conn), "f")
    assert (job.state, job.consecutive_failures) == ("enabled", 1)
    assert (job.runs_total, job.runs_succeeded, job.runs_failed) == (3, 1, 2)
    assert job.last_status == "failed"


def test_the_same_slot_cannot_be_recorded_twice(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1m")
    step(conn, T0 + timedelta(minutes=1))
    job = get_job(SqliteStore(conn), "j")
    with pytest.raises(sqlite3.IntegrityError):
        SqliteStore(conn).insert_run(
            job_id=job.id or 0,
            trigger="schedule",
            status="running",
            scheduled_for=T0 + timedelta(minutes=1),
            now=T0,
        )


def test_orphans_of_dead_processes_are_interrupted(conn: sqlite3.Connection) -> None:
    add(conn, "j", every="1m")
    [claim] = step(conn, T0 + timedelta(minutes=1)).claims
    conn.execute("UPDATE runs SET owner_pid = 2147483000 WHERE id = ?", (claim.run_id,))
    orphans = runs.mark_orphans(SqliteStore(conn), T0 + timedelta(minutes=2))
    assert [o.run_id for o in orphans] == [claim.run_id]
    assert rows(conn)[0][1] == "interrupted"
    assert get_job(SqliteStore(conn), "j").runs_failed == 1


def test_live_owner_is_left_alone_but_a_reused_pid_is_not(conn: sqlite3.Connection) -> None:
    now = datetime.now(UTC)
    assert runs.process_exists(os.getpid(), since=now)
    assert not runs.process_exists(os.getpid(), since=now - timedelta(days=3650))
    add(conn, "j", every="1m", now=now - timedelta(minutes=5))
    conn.execute("UPDATE jobs SET next_run_at = ?", (ts(now),))
    step(conn, now + timedelta(seconds=1), awake_since=now)
    assert runs.mark_orphans(SqliteStore(conn), now + timedelta(seconds=2)) == []


def test_a_queued_run_behind_one_in_flight_does_not_make_the_loop_spin(
    conn: sqlite3.Connection,
) -> None:
    add(conn, "j", every="1h", overlap="queue")
    conn.execute("UPDATE jobs SET next_run_at = ?", (ts(T0),))
    [first] = step(conn, T0).claims
    engine.queue_manual(SqliteStore(conn), "j", T0 + timedelta(seconds=1))
    conn.execute("UPDATE jobs SET next_run_at = NULL")  # only the queued run is left
    assert engine.next_wake(SqliteStore(conn)) is None
    finish(conn, first, "succeeded", T0 + timedelta(seconds=2))
    assert engine.next_wake(SqliteStore(conn)) == T0 + timedelta(seconds=1)
