"""The daemon as a real subprocess firing at a real HTTP server, stopped with real signals."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl import __version__
from tests.conftest import Invoke
from tests.realparts import (
    DaemonProcess,
    Reply,
    Sink,
    job_runs,
    make_due_now,
    query,
    run_jobctl,
    wait_until,
)


@pytest.fixture
def daemons(db_path: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.kill()


def start_daemon(
    db: Path, daemons: list[DaemonProcess], *args: str, env: dict[str, str] | None = None
) -> DaemonProcess:
    daemon = DaemonProcess(db, *args, env=env)
    daemons.append(daemon)
    return daemon.wait_ready()


def finished(db: Path, job: str, count: int) -> list[sqlite3.Row]:
    rows = [r for r in job_runs(db, job) if r["status"] not in ("running", "queued")]
    return rows if len(rows) >= count else []


def executed(db: Path, job: str, count: int) -> list[sqlite3.Row]:
    """Finished runs that ran: on a loaded machine a one-second job may also skip a slot."""
    return [r for r in finished(db, job, count) if r["status"] != "skipped"][:count] or []


def test_fires_carry_headers_and_match_recorded_runs(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    jobctl(
        "add",
        "tick",
        "--url",
        f"{sink.url}/tick",
        "--every",
        "1s",
        "--header",
        "X-Token: ${TICK_TOKEN}",
    )
    daemon = start_daemon(db_path, daemons, env={"TICK_TOKEN": "sekrit-value"})
    wait_until(lambda: len(sink.requests_to("/tick")) >= 3, what="three fires")
    assert daemon.stop() == 0
    received = sink.requests_to("/tick")
    rows = [r for r in job_runs(db_path, "tick") if r["status"] == "succeeded"]
    assert len(rows) == len(received)
    by_run = {int(r.headers["X-Jobctl-Run"]): r for r in received}
    assert sorted(by_run) == [row["id"] for row in rows]
    for row in rows:
        request = by_run[row["id"]]
        assert request.headers["User-Agent"] == f"jobctl/{__version__}"
        assert request.headers["X-Jobctl-Job"] == "tick"
        assert request.headers["X-Token"] == "sekrit-value"
        slot = datetime.fromisoformat(
            request.headers["X-Jobctl-Scheduled-For"].replace("Z", "+00:00")
        )
        assert slot.microsecond == 0
        assert row["scheduled_for"].startswith(slot.strftime("%Y-%m-%dT%H:%M:%S"))
        assert request.at >= slot
        assert row["http_status"] == 200
        assert "sekrit-value" not in (row["snapshot"] or "")
    # A slot that passed before the daemon started fires once as catch-up; the rest on time.
    assert [row["trigger"] for row in rows[1:]] == ["schedule"] * (len(rows) - 1)
    slots = [row["scheduled_for"] for row in rows]
    assert len(set(slots)) == len(slots)


def test_failures_are_recorded_with_their_reason(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    sink.replies["/broken"] = Reply(status=500, body=b"boom")
    sink.replies["/slow"] = Reply(delay=5)
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    jobctl("add", "broken", "--url", f"{sink.url}/broken", "--every", "1s")
    jobctl("add", "refused", "--url", f"http://127.0.0.1:{refused_port}/", "--every", "1s")
    jobctl("add", "slow", "--url", f"{sink.url}/slow", "--every", "1h", "--timeout", "1s")
    daemon = start_daemon(db_path, daemons)
    make_due_now(db_path, "slow")
    broken = wait_until(lambda: executed(db_path, "broken", 1), what="broken run")[0]
    refused = wait_until(lambda: executed(db_path, "refused", 1), what="refused run")[0]
    slow = wait_until(lambda: finished(db_path, "slow", 1), what="slow run")[0]
    daemon.stop()
    assert (broken["status"], broken["http_status"], broken["output"]) == ("failed", 500, "boom")
    assert "500" in broken["error"]
    assert refused["status"] == "failed" and refused["http_status"] is None
    assert "refused" in refused["error"].lower() or "connect" in refused["error"].lower()
    assert slow["status"] == "timed_out"
    assert 900 <= slow["duration_ms"] < 4000
    jobs = {r["name"]: r for r in query(db_path, "SELECT * FROM jobs")}
    assert jobs["broken"]["runs_failed"] >= 1 and jobs["broken"]["last_status"] == "failed"


def test_overlap_skip_records_skipped_slots(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    sink.replies["/busy"] = Reply(delay=2.5)
    jobctl("add", "busy", "--url", f"{sink.url}/busy", "--every", "1s")
    daemon = start_daemon(db_path, daemons)
    wait_until(
        lambda: (
            any(r["status"] == "skipped" for r in job_runs(db_path, "busy"))
            and finished(db_path, "busy", 3)
        ),
        what="a skipped slot",
    )
    daemon.stop()
    rows = job_runs(db_path, "busy")
    assert (
        max(len(sink.requests_to("/busy")), 1)
        <= len([r for r in rows if r["status"] in ("succeeded", "interrupted", "running")]) + 1
    )
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert skipped and all(r["trigger"] == "schedule" for r in skipped)
    job = query(db_path, "SELECT runs_skipped FROM jobs WHERE name = 'busy'")[0]
    assert job["runs_skipped"] == len(skipped)


def test_retries_are_separate_attempts(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    sink.replies["/flaky"] = Reply(status=503)
    jobctl(
        "add",
        "flaky",
        "--url",
        f"{sink.url}/flaky",
        "--every",
        "1h",
        "--retries",
        "2",
        "--backoff",
        "200ms",
    )
    daemon = start_daemon(db_path, daemons)
    make_due_now(db_path)
    rows = wait_until(lambda: finished(db_path, "flaky", 3), what="three attempts")
    daemon.stop()
    assert [(r["attempt"], r["trigger"], r["status"]) for r in rows] == [
        (1, "schedule", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "failed"),
    ]
    assert len({r["scheduled_for"] for r in rows}) == 1
    sent = {r.headers["X-Jobctl-Scheduled-For"] for r in sink.requests_to("/flaky")}
    assert len(sent) == 1
    job = query(db_path, "SELECT * FROM jobs WHERE name = 'flaky'")[0]
    assert job["consecutive_failures"] == 1 and job["runs_failed"] == 3


def test_paused_job_never_fires_and_edits_are_picked_up_live(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    jobctl("add", "sleepy", "--url", f"{sink.url}/sleepy", "--every", "1s", "--paused")
    jobctl("add", "later", "--url", f"{sink.url}/later", "--manual")
    jobctl("add", "marker", "--url", f"{sink.url}/marker", "--every", "1s")
    daemon = start_daemon(db_path, daemons)
    wait_until(lambda: len(sink.requests_to("/marker")) >= 2, what="marker fires")
    assert jobctl("edit", "later", "--every", "1s").exit_code == 0
    wait_until(lambda: sink.requests_to("/later"), timeout=10, what="the edit to be picked up")
    daemon.stop()
    assert sink.requests_to("/sleepy") == []
    assert job_runs(db_path, "sleepy") == []


def test_kill_9_then_restart_marks_interrupted(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    sink.replies["/long"] = Reply(delay=30)
    jobctl("add", "long", "--url", f"{sink.url}/long", "--every", "1h", "--timeout", "1m")
    daemon = start_daemon(db_path, daemons)
    make_due_now(db_path)
    wait_until(lambda: sink.requests_to("/long"), what="the slow request")
    assert [r["status"] for r in job_runs(db_path, "long")] == ["running"]
    daemon.kill()
    second = start_daemon(db_path, daemons)
    rows = wait_until(lambda: finished(db_path, "long", 1), what="the interrupted mark")
    second.stop()
    assert [r["status"] for r in job_runs(db_path, "long")] == ["interrupted"]
    assert "interrupted" in rows[0]["error"]
    assert query(db_path, "SELECT count(*) FROM runs WHERE status = 'running'")[0][0] == 0


def test_second_daemon_is_refused(db_path: Path, daemons: list[DaemonProcess]) -> None:
    first = start_daemon(db_path, daemons)
    result = run_jobctl(db_path, "daemon")
    assert result.returncode == 4
    assert f"pid {first.pid}" in result.stderr
    assert "Traceback" not in result.stderr
    assert first.stop() == 0


def test_sigterm_waits_for_runs_in_flight(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    sink.replies["/finishing"] = Reply(delay=1.0)
    jobctl("add", "finishing", "--url", f"{sink.url}/finishing", "--every", "1h")
    daemon = start_daemon(db_path, daemons, "--grace", "20s")
    make_due_now(db_path)
    wait_until(lambda: sink.requests_to("/finishing"), what="the request")
    daemon.signal(signal.SIGTERM)
    assert daemon.stop() == 0
    assert [r["status"] for r in job_runs(db_path, "finishing")] == ["succeeded"]


def test_sigint_past_the_grace_interrupts_runs(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    sink.replies["/stuck"] = Reply(delay=30)
    jobctl("add", "stuck", "--url", f"{sink.url}/stuck", "--every", "1h", "--timeout", "1m")
    daemon = start_daemon(db_path, daemons, "--grace", "1s")
    make_due_now(db_path)
    wait_until(lambda: sink.requests_to("/stuck"), what="the request")
    daemon.signal(signal.SIGINT)
    assert daemon.stop(timeout=15) == 0
    assert [r["status"] for r in job_runs(db_path, "stuck")] == ["interrupted"]


def test_downtime_gives_one_missed_row_and_one_catchup(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    jobctl("add", "gap", "--url", f"{sink.url}/gap", "--every", "1m")
    past = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    sqlite3.connect(db_path, isolation_level=None).execute(
        "UPDATE jobs SET next_run_at = ?", (past.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),)
    )
    daemon = start_daemon(db_path, daemons)
    wait_until(lambda: finished(db_path, "gap", 2), what="missed + catch-up rows")
    daemon.stop()
    rows = job_runs(db_path, "gap")
    missed = [r for r in rows if r["status"] == "missed"]
    catchup = [r for r in rows if r["trigger"] == "catchup"]
    assert len(missed) == 1 and len(catchup) == 1
    assert missed[0]["scheduled_for"].startswith(past.strftime("%Y-%m-%dT%H:%M:%S"))
    import json

    details = json.loads(missed[0]["details"])
    assert details["missed_count"] in (29, 30)  # 30 or 31 slots passed, the newest fires
    assert catchup[0]["status"] == "succeeded"
    assert catchup[0]["scheduled_for"] > missed[0]["scheduled_for"]
    assert details["missed_until"] < catchup[0]["scheduled_for"].replace(".000000", "")
    job = query(db_path, "SELECT runs_missed FROM jobs")[0]
    assert job["runs_missed"] == details["missed_count"]
    assert len(sink.requests_to("/gap")) == 1


def test_exec_jobs_exit_codes_and_timeouts(
    jobctl: Invoke, db_path: Path, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    pidfile = tmp_path / "child.pid"
    jobctl("add", "ok", "--exec", "echo hello", "--every", "1h")
    jobctl("add", "bad", "--exec", "sh -c 'echo oops >&2; exit 3'", "--every", "1h")
    jobctl("add", "shelled", "--exec", "echo a; echo b >&2; exit 4", "--every", "1h")
    jobctl("add", "direct", "--exec", "echo $0 a;", "--no-shell", "--every", "1h")
    jobctl(
        "add",
        "hang",
        "--exec",
        f"sleep 60 & echo $! > {pidfile}; wait",
        "--shell",
        "--every",
        "1h",
        "--timeout",
        "1s",
    )
    daemon = start_daemon(db_path, daemons)
    make_due_now(db_path)
    ok = wait_until(lambda: finished(db_path, "ok", 1))[0]
    bad = wait_until(lambda: finished(db_path, "bad", 1))[0]
    hang = wait_until(lambda: finished(db_path, "hang", 1))[0]
    shelled = wait_until(lambda: finished(db_path, "shelled", 1))[0]
    direct = wait_until(lambda: finished(db_path, "direct", 1))[0]
    daemon.stop()
    assert (shelled["status"], shelled["exit_code"], shelled["output"]) == ("failed", 4, "a\nb\n")
    assert (direct["status"], direct["output"]) == ("succeeded", "$0 a;\n")
    assert (ok["status"], ok["exit_code"], ok["output"]) == ("succeeded", 0, "hello\n")
    assert (bad["status"], bad["exit_code"], bad["output"]) == ("failed", 3, "oops\n")
    assert hang["status"] == "timed_out"
    child = int(pidfile.read_text())
    wait_until(lambda: not _alive(child), timeout=10, what="the grandchild to be killed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_a_broken_job_is_paused_and_the_others_still_fire(
    jobctl: Invoke, db_path: Path, sink: Sink, daemons: list[DaemonProcess]
) -> None:
    jobctl("add", "good", "--url", f"{sink.url}/good", "--every", "1s")
    jobctl("add", "broken", "--url", f"{sink.url}/broken", "--every", "1s")
    # A row no jobctl command would write: the schedule no longer parses.
    sqlite3.connect(db_path, isolation_level=None).execute(
        "UPDATE jobs SET schedule = 'every now and then' WHERE name = 'broken'"
    )
    daemon = start_daemon(db_path, daemons)
    wait_until(lambda: len(sink.requests_to("/good")) >= 2, what="the good job to fire")
    daemon.stop()
    broken = query(db_path, "SELECT state, paused_reason FROM jobs WHERE name = 'broken'")[0]
    assert broken["state"] == "paused"
    assert "could not be computed" in broken["paused_reason"]
    assert "broken: paused" in daemon.log()
    assert sink.requests_to("/broken") == []
