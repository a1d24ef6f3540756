"""The event stream: each change writes its event in its own transaction, and `jobctl events`
reads them back (newest, after an id, filtered, followed against a real daemon)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobctl.actions import Outcome
from jobctl.cli.event_commands import _EVENT_TYPES
from jobctl.history import prune_events
from jobctl.models import EventType, Owner, RunStatus, RunTrigger
from jobctl.paths import DbLocation
from jobctl.store import Store, open_store
from tests.conftest import BOTH_STORES, Invoke
from tests.realparts import DaemonProcess, add_job, database, jobctl_command, wait_until
from tests.test_engine_step import FakeActions, add, run_step

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
OWNER = Owner.this_process()


@pytest.fixture
def store(store_at: DbLocation) -> Store:
    """The store-level event tests run on an SQLite file and on PostgreSQL."""
    return open_store(store_at)


def kinds(store: Store, after: int = 0) -> list[tuple[str, str | None]]:
    return [(e.type.value, e.job) for e in store.events_after(after)]


def test_the_cli_knows_every_event_type() -> None:
    assert _EVENT_TYPES == tuple(kind.value for kind in EventType)


# ------------------------------------------------------------ written with their changes


def test_a_failing_fire_starts_finishes_and_auto_pauses(store: Store) -> None:
    add(store, "beat", every="1m", max_failures="2")
    mark = store.last_event_id()
    actions = FakeActions(status="failed")
    run_step(store, actions, T0 + timedelta(minutes=1))
    run_step(store, actions, T0 + timedelta(minutes=2))
    events = store.events_after(mark)
    assert [(e.type, e.job) for e in events] == [
        (EventType.RUN_STARTED, "beat"),
        (EventType.RUN_FINISHED, "beat"),
        (EventType.RUN_STARTED, "beat"),
        (EventType.RUN_FINISHED, "beat"),
        (EventType.JOB_CHANGED, "beat"),
    ]
    started, finished = events[0], events[1]
    assert started.run == finished.run is not None
    assert started.data == {
        "trigger": "schedule",
        "attempt": 1,
        "scheduled_for": "2026-06-01T12:01:00Z",
    }
    assert finished.data == {
        "status": "failed",
        "duration_ms": 0,
        "exit_code": 1,
        "http_status": None,
        "error": "exit 1",
    }
    assert events[-1].data == {"state": "paused", "reason": "auto-paused after 2 failures in a row"}


def test_a_one_shot_that_fired_is_completed(store: Store) -> None:
    add(store, "once", at="2026-06-01T12:01:00Z")
    mark = store.last_event_id()
    run_step(store, FakeActions(), T0 + timedelta(minutes=1))
    events = store.events_after(mark)
    assert [(e.type, e.data.get("state")) for e in events] == [
        (EventType.RUN_STARTED, None),
        (EventType.JOB_CHANGED, "completed"),  # claimed and completed in one transaction
        (EventType.RUN_FINISHED, None),
    ]


def test_a_gap_writes_run_missed_with_its_count(store: Store) -> None:
    add(store, "beat", every="1m")
    mark = store.last_event_id()
    now = T0 + timedelta(minutes=10, seconds=30)

    async def step() -> None:
        from jobctl import engine

        runner = engine.Runner(engine.Limits(), actions=FakeActions())
        try:
            await engine.step(store, now, runner=runner, owner=OWNER, awake_since=now)
        finally:
            await runner.close()

    import asyncio

    asyncio.run(step())
    events = store.events_after(mark)
    assert [e.type for e in events] == [
        EventType.RUN_MISSED,
        EventType.RUN_STARTED,
        EventType.RUN_FINISHED,
    ]
    assert events[0].data["missed_count"] == 9
    assert events[0].data["missed_until"] == "2026-06-01T12:09:00Z"
    assert events[1].data["trigger"] == "catchup"


def _run(store: Store, status: RunStatus, trigger: RunTrigger = RunTrigger.MANUAL) -> int:
    job = store.job_named("beat")
    assert job is not None and job.id is not None
    with store.joined():
        return store.insert_run(
            job_id=job.id,
            trigger=trigger,
            status=status,
            scheduled_for=T0,
            now=T0,
            due_at=T0 if status == RunStatus.QUEUED else None,
            owner=OWNER if status == RunStatus.RUNNING else None,
            error="skipped: busy" if status == RunStatus.SKIPPED else None,
        )


def test_queued_runs_start_or_skip_with_events(store: Store) -> None:
    add(store, "beat", manual="true")
    mark = store.last_event_id()
    queued = _run(store, RunStatus.QUEUED)
    assert store.events_after(mark) == []  # queued is not an event of its own
    with store.write():
        store.start_queued_run(queued, T0, OWNER)
    other = _run(store, RunStatus.QUEUED)
    with store.write():
        store.skip_queued_run(other, T0, "skipped: the job was paused")
    skipped = _run(store, RunStatus.SKIPPED, RunTrigger.SCHEDULE)
    events = store.events_after(mark)
    assert [(e.type, e.run) for e in events] == [
        (EventType.RUN_STARTED, queued),
        (EventType.RUN_SKIPPED, other),
        (EventType.RUN_SKIPPED, skipped),
    ]
    assert events[1].data["error"] == "skipped: the job was paused"
    assert events[2].data == {
        "trigger": "schedule",
        "scheduled_for": "2026-06-01T12:00:00Z",
        "error": "skipped: busy",
    }


def test_a_run_finishes_once_whether_recorded_or_interrupted(store: Store) -> None:
    add(store, "beat", manual="true")
    first, second = _run(store, RunStatus.RUNNING), _run(store, RunStatus.RUNNING)
    mark = store.last_event_id()
    with store.write():
        store.interrupt_run(first, T0 + timedelta(seconds=2), "interrupted: the daemon stopped")
        outcome = Outcome(status="succeeded", started_at=T0, finished_at=T0, exit_code=0)
        assert not store.finish_run(first, outcome)  # already ended: no second event
        assert store.finish_run(second, outcome)
    events = store.events_after(mark)
    assert [(e.type, e.run, e.data["status"]) for e in events] == [
        (EventType.RUN_FINISHED, first, "interrupted"),
        (EventType.RUN_FINISHED, second, "succeeded"),
    ]
    assert abs(events[0].data["duration_ms"] - 2000) <= 1  # julianday arithmetic


def test_an_event_is_rolled_back_with_its_change(store: Store) -> None:
    add(store, "beat", manual="true")
    mark = store.last_event_id()
    with pytest.raises(RuntimeError), store.write():
        _run(store, RunStatus.RUNNING)
        raise RuntimeError("the claim failed")
    assert store.events_after(mark) == []
    assert store.newest_run_id() == 0


def test_the_daemon_heartbeat_starts_and_stops(store: Store) -> None:
    store.heartbeat_start(
        pid=42, host="box", started_at=T0, now=T0, listen="http://127.0.0.1:8080", log_file=None
    )
    with store.write():
        store.heartbeat_stop(T0 + timedelta(hours=1))
    events = store.events_after(0)
    assert [(e.type, e.job, e.run) for e in events] == [
        (EventType.DAEMON_STARTED, None, None),
        (EventType.DAEMON_STOPPED, None, None),
    ]
    assert events[0].data == {"pid": 42, "host": "box", "listen": "http://127.0.0.1:8080"}


def test_the_pruner_forgets_events_after_a_week(store: Store) -> None:
    store.add_event(EventType.JOB_ADDED, T0 - timedelta(days=8), job="old")
    store.add_event(EventType.JOB_ADDED, T0 - timedelta(days=6), job="recent")
    assert prune_events(store, T0) == 1
    assert kinds(store) == [("job.added", "recent")]


class Done(Exception):
    """The follower's test is over."""


def test_following_with_a_filter_pages_through_and_misses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobctl import events as stream

    monkeypatch.setattr(stream, "PAGE", 2)  # pages end inside a burst
    writer, reader = open_store(tmp_path / "e.db"), open_store(tmp_path / "e.db")
    bursts = iter(range(4))

    def sleep_and_write(_seconds: float) -> None:
        burst = next(bursts, None)
        if burst is None:
            raise Done
        with writer.write():  # another process commits a burst meanwhile
            for index in range(5):
                kind = EventType.JOB_CHANGED if index % 2 else EventType.JOB_ADDED
                writer.add_event(kind, T0, job=f"j{burst}.{index}")

    where = stream.EventFilter(types=[EventType.JOB_CHANGED])
    seen = []
    try:
        for event in stream.follow_events(reader, where, 0, sleep=sleep_and_write):
            seen.append(event.job)
    except Done:
        pass
    assert seen == [f"j{burst}.{index}" for burst in range(4) for index in (1, 3)]


# ------------------------------------------------------------ the catalog, through the CLI


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@BOTH_STORES
def test_job_changes_are_events(jobctl: Invoke, tmp_path: Path) -> None:
    assert jobctl("add", "a", "--exec", "true", "--every", "1h").exit_code == 0
    assert jobctl("add", "b", "--exec", "true", "--manual").exit_code == 0
    assert jobctl("pause", "a").exit_code == 0
    assert jobctl("resume", "a").exit_code == 0
    assert jobctl("edit", "b", "--name", "c").exit_code == 0
    assert jobctl("rm", "c", "--yes").exit_code == 0
    jobfile = tmp_path / "jobs.toml"
    jobfile.write_text(
        'version = 1\n[[jobs]]\nname = "d"\naction = "exec"\ntrigger = "manual"\n'
        '[jobs.spec]\ncommand = "true"\n',
        encoding="utf-8",
    )
    applied = jobctl("apply", "-f", str(jobfile), "--prune")
    assert applied.exit_code == 0, applied.stderr
    result = jobctl("events", "--json", "--limit", "0")
    assert result.exit_code == 0, result.stderr
    seen = [(e["type"], e["job"], e.get("state")) for e in lines(result.stdout)]
    assert seen[:6] == [
        ("job.added", "a", "enabled"),
        ("job.added", "b", "enabled"),
        ("job.changed", "a", "paused"),
        ("job.changed", "a", "enabled"),
        ("job.changed", "c", "enabled"),
        ("job.removed", "c", None),
    ]
    # apply adds d and with --prune removes a (the file's jobs are all there is)
    assert sorted(seen[6:]) == [("job.added", "d", "enabled"), ("job.removed", "a", None)]
    ids = [e["id"] for e in lines(result.stdout)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert lines(result.stdout)[4]["renamed_from"] == "b"


@BOTH_STORES
def test_events_lists_the_newest_filters_and_resumes(jobctl: Invoke) -> None:
    for name in ("a", "b", "c"):
        assert jobctl("add", name, "--exec", "true", "--manual").exit_code == 0
    assert jobctl("pause", "b").exit_code == 0
    everything = lines(jobctl("events", "--json").stdout)
    assert [e["type"] for e in everything] == ["job.added"] * 3 + ["job.changed"]
    assert list(everything[0])[:5] == ["id", "at", "type", "job", "run"]
    newest = lines(jobctl("events", "--json", "--limit", "2").stdout)
    assert newest == everything[-2:]
    after = lines(jobctl("events", "--json", "--since-id", str(everything[1]["id"])).stdout)
    assert after == everything[2:]
    only = jobctl("events", "--json", "--type", "job.changed", "--job", "b")
    assert [(e["type"], e["job"]) for e in lines(only.stdout)] == [("job.changed", "b")]
    human = jobctl("events").stdout.splitlines()
    assert len(human) == 4 and "job.changed" in human[-1] and "paused" in human[-1]
    assert jobctl("events", "--type", "run.nope").exit_code == 2


def test_events_of_a_missing_database_is_not_found(tmp_path: Path) -> None:
    from tests.realparts import run_jobctl

    result = run_jobctl(tmp_path / "nope.db", "events")
    assert result.returncode == 3
    assert "no database" in result.stderr


# ------------------------------------------------------------ following a real daemon


class Follower:
    """`jobctl events --follow --json ...` in a subprocess, its lines parsed as they come."""

    def __init__(self, db: Path, *args: str) -> None:
        env = {**os.environ, "JOBCTL_DB": database(db)}
        self.process = subprocess.Popen(
            jobctl_command("events", "--follow", "--json", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.events: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def finished_runs(self) -> int:
        return sum(1 for e in self.events if e["type"] == "run.finished")

    def stop(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        code = self.process.wait(10)
        self.reader.join(5)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


@BOTH_STORES
def test_follow_a_daemon_and_resume_with_since_id(db_path: Path) -> None:
    add_job(db_path, "beat", "--exec", "echo beat", "--cron", "* * * * * *")
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        first = Follower(db_path)
        wait_until(lambda: first.finished_runs() >= 3, 20, "three runs in the stream")
        code, err = first.stop(signal.SIGTERM)
        assert code == 0 and "Traceback" not in err, err
        last = first.events[-1]["id"]
        second = Follower(db_path, "--since-id", str(last))  # the daemon fires on meanwhile
        wait_until(lambda: second.finished_runs() >= 2, 20, "two more runs")
        code, err = second.stop(signal.SIGINT)
        assert code == 0 and "Traceback" not in err, err
    finally:
        daemon.stop()
    seen = first.events + second.events
    ids = [e["id"] for e in seen]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no gap, no duplicate
    for event in seen:
        assert {"id", "at", "type", "job", "run"} <= set(event)
        assert event["at"].endswith("Z")
    started = {e["run"] for e in seen if e["type"] == "run.started"}
    finished = [e for e in seen if e["type"] == "run.finished"]
    assert all(e["run"] in started or e["run"] < min(started) for e in finished)
    assert {e["status"] for e in finished} == {"succeeded"}
    assert all(e["job"] == "beat" for e in finished)
    stored = subprocess.run(
        [sys.executable, "-m", "jobctl", "events", "--json", "--since-id", str(ids[0] - 1)],
        capture_output=True,
        text=True,
        env={**os.environ, "JOBCTL_DB": database(db_path)},
        check=True,
    )
    stored_ids = [e["id"] for e in lines(stored.stdout)]
    assert stored_ids[: len(ids)] == ids  # what was followed is what is stored
    kinds_stored = [e["type"] for e in lines(stored.stdout)]
    assert kinds_stored[-1] == "daemon.stopped"


def test_follow_ends_quietly_when_its_reader_goes_away(db_path: Path) -> None:
    add_job(db_path, "a", "--exec", "true", "--manual")
    env = {**os.environ, "JOBCTL_DB": str(db_path)}
    follower = subprocess.Popen(
        jobctl_command("events", "--follow", "--since-id", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert follower.stdout is not None and follower.stderr is not None
    assert b"job.added" in follower.stdout.readline()
    follower.stdout.close()  # `jobctl events --follow | head -1`
    add_job(db_path, "b", "--exec", "true", "--manual")  # the next line meets a closed pipe
    assert follower.wait(10) == 0
    assert follower.stderr.read() == b""
