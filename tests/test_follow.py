"""`runs show --follow ID|NAME`: a run's output as it is stored, then its outcome and exit code.

The follower is a real `jobctl` subprocess reading a real SQLite file; the test plays the
run's owner, storing pieces with `store.append_output` and the outcome with `finish_run`,
as the daemon does while a run is in flight.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from jobctl.actions import Outcome
from jobctl.models import HOST, OutputPiece, OutputStream, Owner, RunStatus, RunTrigger
from jobctl.store import Store, open_store
from tests.conftest import Invoke
from tests.realparts import ROOT, DaemonProcess, PipeReader, jobctl_command, run_jobctl, wait_until


class Follower:
    """`jobctl runs show --follow ...` as a subprocess, its output read as it comes."""

    def __init__(self, db: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            jobctl_command("runs", "show", "--follow", *args),
            env={**os.environ, "JOBCTL_DB": str(db)},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out = PipeReader(self.process.stdout)
        self.err = PipeReader(self.process.stderr)

    def wait(self, timeout: float = 15) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self.out.join()
        self.err.join()
        return code


def now() -> datetime:
    return datetime.now(UTC)


def start_run(store: Store, job: str, *, owner: Owner | None = None) -> int:
    """A running run of `job`, owned by this test process unless told otherwise."""
    found = store.job_named(job)
    assert found is not None and found.id is not None
    with store.write():
        return store.insert_run(
            job_id=found.id,
            trigger=RunTrigger.MANUAL,
            status=RunStatus.RUNNING,
            scheduled_for=now(),
            now=now(),
            owner=owner or Owner.this_process(),
        )


def finish(store: Store, run_id: int, status: str, output: str, exit_code: int) -> None:
    with store.write():
        store.finish_run(
            run_id,
            Outcome(
                status=status,
                started_at=now(),
                finished_at=now(),
                exit_code=exit_code,
                output=output,
                error=None if status == "succeeded" else f"exit code {exit_code}",
            ),
        )


def piece(
    run_id: int, seq: int, text: str, stream: OutputStream = OutputStream.STDOUT
) -> OutputPiece:
    return OutputPiece(run_id, seq, stream, now(), text)


def test_follow_prints_each_piece_soon_after_it_is_stored(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "long", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = start_run(store, "long")
    store.append_output([piece(run_id, 1, "before\n")])
    follower = Follower(db_path, str(run_id))
    wait_until(lambda: follower.out.lines() == ["before"], what="what was stored before")
    delays = []
    for seq in range(2, 7):
        stream = OutputStream.STDERR if seq % 2 else OutputStream.STDOUT
        store.append_output([piece(run_id, seq, f"line {seq}\n", stream)])
        written = time.monotonic()
        wait_until(lambda seq=seq: f"line {seq}" in follower.out.lines(), what=f"line {seq}")
        delays.append(time.monotonic() - written)
    assert follower.process.poll() is None  # still following: the run goes on
    finish(store, run_id, "succeeded", "whole output\n", 0)
    assert follower.wait() == 0, follower.err.text()
    # every piece once, in order, both streams on stdout; not the whole output again
    assert follower.out.lines() == ["before", *(f"line {seq}" for seq in range(2, 7))]
    assert f"run {run_id} of long · attempt 1 · succeeded · exit 0" in follower.err.text()
    assert max(delays) < 0.5, delays


def test_follow_exits_1_when_the_run_fails(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "long", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = start_run(store, "long")
    follower = Follower(db_path, str(run_id))
    store.append_output([piece(run_id, 1, "no newline at the end")])
    wait_until(lambda: "no newline" in follower.out.text(), what="the piece")
    finish(store, run_id, "failed", "no newline at the end", 3)
    assert follower.wait() == 1
    assert follower.out.text() == "no newline at the end\n"  # the line is ended for the shell
    assert "· failed · exit 3" in follower.err.text()


def test_follow_of_a_finished_run_prints_its_output_and_outcome_at_once(
    db_path: Path, jobctl: Invoke
) -> None:
    jobctl("add", "quick", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = start_run(store, "quick")
    finish(store, run_id, "failed", "one\ntwo\n", 2)  # no pieces: output from before them
    result = run_jobctl(db_path, "runs", "show", str(run_id), "--follow", timeout=15)
    assert result.returncode == 1
    assert result.stdout == "one\ntwo\n"
    assert f"run {run_id} of quick · attempt 1 · failed · exit 2" in result.stderr


def test_follow_with_json_prints_one_object_per_piece_then_the_run(
    db_path: Path, jobctl: Invoke
) -> None:
    jobctl("add", "quick", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = start_run(store, "quick")
    store.append_output([piece(run_id, 1, "out\n"), piece(run_id, 2, "err\n", OutputStream.STDERR)])
    finish(store, run_id, "succeeded", "out\nerr\n", 0)
    result = run_jobctl(db_path, "runs", "show", str(run_id), "--follow", "--json", timeout=15)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["seq"], line["stream"], line["text"]) for line in lines[:2]] == [
        (1, "stdout", "out\n"),
        (2, "stderr", "err\n"),
    ]
    assert lines[2]["id"] == run_id and lines[2]["status"] == "succeeded"


def test_follow_of_a_job_waits_for_its_next_run(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "later", "--exec", "true", "--manual")
    follower = Follower(db_path, "later")
    wait_until(lambda: "waiting for the next run of later" in follower.err.text(), what="wait")
    store = open_store(db_path)
    run_id = start_run(store, "later")
    store.append_output([piece(run_id, 1, "hello\n")])
    wait_until(lambda: follower.out.lines() == ["hello"], what="the new run's output")
    assert f"following run {run_id} of later" in follower.err.text()
    finish(store, run_id, "succeeded", "hello\n", 0)
    assert follower.wait() == 0


def test_follow_of_a_job_takes_its_run_in_flight(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "busy", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = start_run(store, "busy")
    follower = Follower(db_path, "busy")
    wait_until(lambda: f"following run {run_id} of busy (running)" in follower.err.text())
    finish(store, run_id, "succeeded", "", 0)
    assert follower.wait() == 0


def test_follow_stops_quietly_on_ctrl_c_and_sigterm(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "long", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = start_run(store, "long")
    store.append_output([piece(run_id, 1, "partial")])
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        follower = Follower(db_path, str(run_id))
        wait_until(lambda f=follower: "partial" in f.out.text(), what="the piece")
        follower.process.send_signal(signum)
        assert follower.wait() == code
        assert follower.out.text() == "partial\n"
        assert follower.err.text() == ""


def test_follow_ends_when_the_runs_owner_dies(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "orphan", "--exec", "true", "--manual")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store = open_store(db_path)
        run_id = start_run(store, "orphan", owner=Owner(owner.pid, HOST))
        follower = Follower(db_path, str(run_id))
        time.sleep(0.5)  # not for correctness: the owner may die before or while it follows
    finally:
        owner.kill()
        owner.wait()
    assert follower.wait(timeout=15) == 1
    assert "interrupted" in follower.err.text()


def queue_run(
    store: Store,
    job: str,
    *,
    trigger: RunTrigger = RunTrigger.MANUAL,
    attempt: int = 1,
    scheduled_for: datetime | None = None,
) -> int:
    found = store.job_named(job)
    assert found is not None and found.id is not None
    with store.write():
        return store.insert_run(
            job_id=found.id,
            trigger=trigger,
            status=RunStatus.QUEUED,
            scheduled_for=scheduled_for or now(),
            now=now(),
            attempt=attempt,
        )


def test_follow_of_a_queued_run_waits_for_it_to_start(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "queued", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = queue_run(store, "queued")
    follower = Follower(db_path, str(run_id))
    wait_until(lambda: "the daemon is not running" in follower.err.text(), what="the hint")
    with store.write():
        store.start_queued_run(run_id, now(), Owner.this_process())
    store.append_output([piece(run_id, 1, "started\n")])
    wait_until(lambda: follower.out.lines() == ["started"], what="its output")
    finish(store, run_id, "succeeded", "started\n", 0)
    assert follower.wait() == 0


def test_follow_of_a_job_goes_on_through_its_retries(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "flaky", "--exec", "true", "--manual", "--retries", "1")
    store = open_store(db_path)
    first = start_run(store, "flaky")
    follower = Follower(db_path, "flaky")
    wait_until(lambda: f"following run {first}" in follower.err.text(), what="the first")
    slot = store.get_run(first)
    assert slot is not None
    with store.write():  # the owner records the failure and queues the retry together
        store.finish_run(
            first,
            Outcome(status="failed", started_at=now(), finished_at=now(), exit_code=1),
        )
        retry = store.insert_run(
            job_id=slot.job_id or 0,
            trigger=RunTrigger.RETRY,
            status=RunStatus.QUEUED,
            scheduled_for=slot.scheduled_for,
            now=now(),
            attempt=2,
        )
    wait_until(lambda: f"following its retry, run {retry}" in follower.err.text(), what="retry")
    with store.write():
        store.start_queued_run(retry, now(), Owner.this_process())
    finish(store, retry, "succeeded", "", 0)
    assert follower.wait() == 0
    assert "attempt 1 · failed" in follower.err.text()
    assert "attempt 2 · succeeded" in follower.err.text()
    # following the first run by its id ends with it, and says where the retry is
    result = run_jobctl(db_path, "runs", "show", str(first), "--follow", timeout=15)
    assert result.returncode == 1 and f"retry queued as run {retry}" in result.stderr


def test_follow_of_an_unknown_run_or_job_is_not_found(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "known", "--exec", "true", "--manual")
    assert jobctl("runs", "show", "--follow", "99").exit_code == 3
    assert jobctl("runs", "show", "--follow", "nope").exit_code == 3
    assert jobctl("runs", "show", "nope").exit_code == 2  # without --follow, ids only


def test_follow_a_daemon_run_to_its_failure(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "fails", "--exec", "echo one; echo two >&2; exit 4", "--manual")
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        follower = Follower(db_path, "fails")
        wait_until(lambda: "waiting for the next run" in follower.err.text(), what="wait")
        queued = run_jobctl(db_path, "run", "fails", "--queue")
        assert queued.returncode == 0, queued.stderr
        assert follower.wait(timeout=30) == 1
    finally:
        daemon.stop()
    assert follower.out.lines() == ["one", "two"]
    assert "· failed · exit 4" in follower.err.text()


TICKER = (
    "import sys, time\n"
    "for i in range(15):\n"
    "    print(i, repr(time.time()), flush=True)\n"
    "    time.sleep(0.2)\n"
)


def test_follow_shows_each_line_of_a_daemon_run_within_500ms(
    db_path: Path, jobctl: Invoke, tmp_path: Path
) -> None:
    """The issue's check: a job printing a line every 200 ms for 3 s, followed from another
    process; each line shows within 500 ms of its being written (the job prints the time)."""
    script = tmp_path / "ticker.py"
    script.write_text(TICKER)
    jobctl("add", "ticker", "--exec", f"{sys.executable} {script}", "--manual")
    daemon = DaemonProcess(db_path).wait_ready()
    arrivals: list[tuple[str, float]] = []
    try:
        follower = Follower(db_path, "ticker")
        wait_until(lambda: "waiting for the next run" in follower.err.text(), what="wait")
        assert run_jobctl(db_path, "run", "ticker", "--queue").returncode == 0
        seen = 0
        deadline = time.monotonic() + 30
        while follower.process.poll() is None and time.monotonic() < deadline:
            lines = follower.out.complete_lines()
            arrivals += [(line, time.time()) for line in lines[seen:]]
            seen = len(lines)
            time.sleep(0.01)
        assert follower.wait() == 0, follower.err.text()
        arrivals += [(line, time.time()) for line in follower.out.lines()[seen:]]
    finally:
        daemon.stop()
    assert [line.split()[0] for line, _ in arrivals] == [str(i) for i in range(15)]
    late = [(line, at - float(line.split()[1])) for line, at in arrivals]
    assert all(delay < 0.5 for _, delay in late), late


# ------------------------------------------------------------------ the current run


def test_show_list_and_status_show_the_run_in_flight(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "busy", "--exec", "true", "--manual")
    jobctl("add", "idle", "--exec", "true", "--manual")
    store = open_store(db_path)
    run_id = start_run(store, "busy")
    store.append_output([piece(run_id, 1, "step 1\n"), piece(run_id, 2, "step 2\n\n")])

    shown = json.loads(jobctl("show", "busy", "--json").stdout)["current_run"]
    assert shown["id"] == run_id and shown["status"] == "running"
    assert shown["last_line"] == "step 2" and shown["elapsed_ms"] >= 0
    assert shown["started_at"].endswith("Z")
    assert json.loads(jobctl("show", "idle", "--json").stdout)["current_run"] is None
    listed = {
        job["name"]: job["current_run"] for job in json.loads(jobctl("list", "--json").stdout)
    }
    assert listed["busy"]["id"] == run_id and listed["idle"] is None
    in_flight = json.loads(jobctl("status", "--json").stdout)["in_flight"]
    assert [(item["job"], item["run"], item["last_line"]) for item in in_flight] == [
        ("busy", run_id, "step 2")
    ]

    text = jobctl("show", "busy").stdout
    assert f"running now:   run {run_id} · " in text and "  last output: step 2" in text
    assert "running now" not in jobctl("show", "idle").stdout
    for command in ("list", "status"):
        text = jobctl(command).stdout
        assert "in flight:" in text, command
        assert any(
            line.split()[:3] == ["busy", "run", str(run_id)] and line.endswith("· step 2")
            for line in text.splitlines()
        ), text

    finish(store, run_id, "succeeded", "step 1\nstep 2\n", 0)
    assert json.loads(jobctl("status", "--json").stdout)["in_flight"] == []
    assert "in flight:" not in jobctl("list").stdout


def test_last_line_is_the_last_one_not_blank_and_short() -> None:
    from jobctl.current_runs import LAST_LINE_MAX, last_line

    assert last_line("a\nb\n \n") == "b"
    assert last_line("") is None and last_line(None) is None and last_line("\n\n") is None
    long = last_line("x" * 500)
    assert long is not None and len(long) == LAST_LINE_MAX and long.endswith("…")
