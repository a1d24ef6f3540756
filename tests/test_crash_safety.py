"""Crash safety: a killed daemon or `jobctl run`, a database or lock file that goes away,
a full disk."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobctl import processes
from tests.realparts import (
    ROOT,
    DaemonProcess,
    Reply,
    Sink,
    add_job,
    job_runs,
    jobctl_command,
    make_due_now,
    query,
    run_jobctl,
    wait_until,
)
from tests.test_service import NotifySocket


@pytest.fixture
def daemons(db_path: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.kill()


def start_daemon(db: Path, daemons: list[DaemonProcess], *args: str) -> DaemonProcess:
    daemon = DaemonProcess(db, *args)
    daemons.append(daemon)
    return daemon.wait_ready()


def sleep_copies(marker: str) -> list[int]:
    """Live `sleep MARKER` processes, found through /proc (zombies are not alive)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if argv[0].endswith(b"sleep") and marker.encode() in argv[1:2] and state != b"Z":
            found.append(int(entry))
    return found


class CopyCounter:
    """Counts the copies of a command every few milliseconds; remembers the most seen."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(sleep_copies(self.marker)))
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique sleep length (990.xxxxxx seconds) that names this test's processes."""
    value = f"990.{uuid.uuid4().int % 10**6:06d}"
    yield value
    for pid in sleep_copies(value):  # never leave one behind, whatever the test did
        os.kill(pid, signal.SIGKILL)


def command_for(marker: str, shell: bool) -> list[str]:
    # Through sh with a second command, sh stays as the sleep's parent: the sleep is then a
    # grandchild, which the death signal does not reach.
    if shell:
        return ["--exec", f"sleep {marker}; true", "--shell"]
    return ["--exec", f"sleep {marker}", "--no-shell"]


@pytest.mark.parametrize("shell", [False, True], ids=["direct-child", "grandchild"])
def test_kill_9_of_the_daemon_leaves_at_most_one_copy(
    db_path: Path, daemons: list[DaemonProcess], marker: str, shell: bool
) -> None:
    add_job(db_path, "long", *command_for(marker, shell), "--every", "2s")
    first = start_daemon(db_path, daemons)
    make_due_now(db_path, "long")
    old = wait_until(lambda: sleep_copies(marker), what="the first copy")
    row = wait_until(lambda: [r for r in job_runs(db_path, "long") if r["pgid"]], what="pgid")[0]
    if not shell:
        assert row["pgid"] == old[0]  # the command leads its own group
    assert row["pgid_started"] == processes.start_ticks(row["pgid"])
    counter = CopyCounter(marker)
    try:
        first.kill()
        if not shell:  # the kernel took the direct child along with the daemon
            wait_until(lambda: not sleep_copies(marker), 10, "the death signal")
        second = start_daemon(db_path, daemons)
        wait_until(lambda: not any(map(_alive, old)), 10, "the orphan to be ended")
        interrupted = wait_until(
            lambda: [r for r in job_runs(db_path, "long") if r["status"] == "interrupted"],
            what="the interrupted row",
        )
        make_due_now(db_path, "long")
        wait_until(lambda: set(sleep_copies(marker)) - set(old), what="the new daemon's copy")
        assert second.stop() == 0
    finally:
        most = counter.stop()
    assert most <= 1
    assert not sleep_copies(marker)  # a clean stop ends its own run too
    if shell:
        assert f"process group {row['pgid']} was ended (SIGTERM)" in interrupted[0]["error"]


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_bytes().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


def start_manual_run(db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        jobctl_command("run", "long"),
        env={**os.environ, "JOBCTL_DB": str(db)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("shell", [False, True], ids=["direct-child", "grandchild"])
def test_kill_9_of_jobctl_run_leaves_no_copy_behind(
    db_path: Path, daemons: list[DaemonProcess], marker: str, shell: bool
) -> None:
    add_job(db_path, "long", *command_for(marker, shell), "--manual")
    runner = start_manual_run(db_path)
    try:
        old = wait_until(lambda: sleep_copies(marker), what="the command")
        wait_until(lambda: job_runs(db_path, "long")[0]["pgid"], what="the recorded group")
    finally:
        runner.kill()
        runner.wait()
    if not shell:
        wait_until(lambda: not sleep_copies(marker), 10, "the death signal")
    start_daemon(db_path, daemons)
    wait_until(lambda: not any(map(_alive, old)), 10, "the orphan to be ended")
    rows = wait_until(
        lambda: [r for r in job_runs(db_path, "long") if r["status"] == "interrupted"],
        what="the interrupted row",
    )
    if shell:
        assert "was ended (SIGTERM)" in rows[0]["error"]


def test_a_reader_ends_the_group_of_a_killed_jobctl_run(db_path: Path, marker: str) -> None:
    add_job(db_path, "long", *command_for(marker, True), "--manual")
    runner = start_manual_run(db_path)
    try:
        old = wait_until(lambda: sleep_copies(marker), what="the command")
        wait_until(lambda: job_runs(db_path, "long")[0]["pgid"], what="the recorded group")
    finally:
        runner.kill()
        runner.wait()
    assert sleep_copies(marker) == old  # the grandchild outlived its owner
    result = run_jobctl(db_path, "runs", "long", "--json")
    assert result.returncode == 0, result.stderr
    assert not any(map(_alive, old))
    assert '"interrupted"' in result.stdout


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(marker: str) -> None:
    child = subprocess.Popen(
        ["sh", "-c", f"trap '' TERM; sleep {marker}; true"], start_new_session=True
    )
    try:
        wait_until(lambda: sleep_copies(marker), what="the sleep")
        started = processes.start_ticks(child.pid)
        assert started is not None
        group = processes.RunGroup(7, child.pid, started)
        notes = processes.end_groups([group], grace=0.3)
        assert notes == {7: f"its process group {child.pid} was killed (SIGKILL) after 0.3s"}
        wait_until(lambda: not sleep_copies(marker), 5, "the kill")
    finally:
        child.kill()
        child.wait()


def test_a_reused_group_id_is_left_alone(marker: str) -> None:
    child = subprocess.Popen(["sleep", marker], start_new_session=True)
    try:
        started = processes.start_ticks(child.pid)
        assert started is not None
        # the run's group had this id but a leader that started earlier: not the same group
        stale = processes.RunGroup(7, child.pid, started - 1)
        assert processes.end_groups([stale], grace=0.1) == {}
        assert processes.kill_group(stale) is None
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("leader_started", "members", "same"),
    [
        (100, [(50, 100), (51, 120)], True),  # the leader alive, started when recorded
        (100, [(50, 130), (51, 140)], False),  # a new leader with the old id
        (100, [(51, 120), (52, 101)], True),  # leader gone, descendants started later
        (100, [(51, 99)], False),  # a member older than our leader is not ours
    ],
)
def test_is_same_group(leader_started: int, members: list[tuple[int, int]], same: bool) -> None:
    found = [processes.Member(pid, started) for pid, started in members]
    assert processes.is_same_group(50, leader_started, found) is same


# ------------------------------------------------------- the database or lock file goes away


def _remove_database(db: Path) -> None:
    for path in db.parent.glob(db.name + "*"):
        if not path.name.endswith(".lock"):
            path.unlink()


def _replace_database(db: Path) -> None:
    copy = db.with_name("copy.db")
    copy.write_bytes(db.read_bytes())
    os.replace(copy, db)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (_remove_database, "database file {db} was deleted"),
        (_replace_database, "database file {db} was replaced"),
        (lambda db: Path(f"{db}.lock").unlink(), "lock file {db}.lock was deleted"),
    ],
    ids=["db-deleted", "db-replaced", "lock-deleted"],
)
def test_a_daemon_whose_files_went_away_stops_with_an_error(
    db_path: Path, daemons: list[DaemonProcess], sink: Sink, change: Any, what: str
) -> None:
    add_job(db_path, "ping", "--url", f"{sink.url}/ping", "--every", "1s")
    daemon = start_daemon(db_path, daemons)
    wait_until(lambda: sink.requests_to("/ping"), what="a first fire")
    change(db_path)
    code = daemon.process.wait(timeout=20)
    assert code != 0
    log = daemon.log()
    critical = [line for line in log.splitlines() if "CRITICAL" in line]
    assert len(critical) == 1, log
    assert what.format(db=db_path) in critical[0]
    assert "Traceback" not in log
    # the file now at the path gets a daemon again
    second = start_daemon(db_path, daemons)
    assert second.stop() == 0


def test_a_second_daemon_after_the_lock_was_deleted_leaves_one_running(
    db_path: Path, daemons: list[DaemonProcess]
) -> None:
    first = start_daemon(db_path, daemons)
    Path(f"{db_path}.lock").unlink()
    second = DaemonProcess(db_path)
    daemons.append(second)
    assert first.process.wait(timeout=20) != 0  # the one that lost its lock file stops
    second.wait_ready()
    assert "lock file" in first.log()
    assert second.stop() == 0


# ------------------------------------------------------------------------------ full disk


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (mounting needs root, as the tests run here); skipped where not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros until the filesystem has no space left."""
    filler = directory / "filler"
    # Unbuffered: a buffered file would flush what it kept on close, and fail there.
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_full_disk_is_reported_once_and_the_daemon_stops_cleanly(
    small_filesystem: Path, tmp_path: Path, sink: Sink
) -> None:
    db = small_filesystem / "jobs.db"
    sink.replies["/slow"] = Reply(delay=1.5)
    add_job(db, "slow", "--url", f"{sink.url}/slow", "--every", "1s")
    notify = NotifySocket(tmp_path / "notify")
    daemon = DaemonProcess(db, "--listen", "127.0.0.1:0", env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        daemon.wait_ready()
        base = wait_until(lambda: query(db, "SELECT listen FROM daemon")[0][0], what="listen")
        wait_until(lambda: sink.requests_to("/slow"), what="a first fire")
        filler = fill(small_filesystem)
        _, body = wait_until(
            lambda: (reply := healthz(base))[0] == 503 and reply, what="/healthz to say 503"
        )
        assert body["status"] == "cannot write" and "full" in body["problem"]
        assert any("STATUS=cannot write the database" in line for line in notify.lines())
        # status reads the free space itself: the daemon cannot write its heartbeat
        status = run_jobctl(db, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert "is full" in json.loads(status.stdout)["daemon"]["problem"]
        assert run_jobctl(db, "status", "--check").returncode == 4
        # the loop goes on trying (its ticks advance) without flooding the log
        started = body["last_tick_at"]
        wait_until(
            lambda: _seconds_between(started, healthz(base)[1]["last_tick_at"]) >= 3,
            what="three seconds of the daemon's own ticks",
        )
        errors = [line for line in daemon.log().splitlines() if " ERROR " in line]
        assert len(errors) == 1, daemon.log()
        assert "cannot write the database" in errors[0]
        assert "Traceback" not in daemon.log()
        filler.unlink()
        wait_until(lambda: healthz(base)[0] == 200, what="/healthz to recover")
        assert "can be written again" in daemon.log()
        count = len(sink.requests_to("/slow"))
        wait_until(lambda: len(sink.requests_to("/slow")) > count, what="fires again")
        # full again while a run is in flight, then SIGTERM: a clean stop all the same
        filler = fill(small_filesystem)
        wait_until(lambda: healthz(base)[0] == 503, what="/healthz to say 503 again")
        assert daemon.stop() == 0
        log = daemon.log()
        assert "Traceback" not in log and "Unclosed" not in log, log
        assert "daemon stopped" in log
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
        notify.close()
    filler.unlink()
    runs_listed = run_jobctl(db, "runs", "--json")  # a reader tidies what was left running
    assert runs_listed.returncode == 0, runs_listed.stderr
    assert "running" not in {run["status"] for run in json.loads(runs_listed.stdout)}


def _seconds_between(first: str, second: str) -> float:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(second) - parse(first)).total_seconds()


def _in_flight(run: sqlite3.Row, moment: str) -> bool:
    """The run had started and not yet finished at `moment`."""
    return _seconds_between(run["started_at"], moment) >= 0 and (
        run["finished_at"] is None or _seconds_between(moment, run["finished_at"]) > 0
    )


def test_slots_that_passed_while_the_disk_was_full_are_one_missed_row(
    small_filesystem: Path, sink: Sink
) -> None:
    db = small_filesystem / "jobs.db"
    add_job(db, "tick", "--url", f"{sink.url}/tick", "--every", "1s")
    daemon = DaemonProcess(db, "--listen", "127.0.0.1:0")
    try:
        daemon.wait_ready()
        base = wait_until(lambda: query(db, "SELECT listen FROM daemon")[0][0], what="listen")
        wait_until(lambda: sink.requests_to("/tick"), what="a first fire")
        filled_at = datetime.now(UTC)
        first_id = max(r["id"] for r in job_runs(db, "tick"))  # the rows before the outage
        filler = fill(small_filesystem)
        wait_until(lambda: healthz(base)[0] == 503, what="/healthz to say 503")
        full_since = datetime.now(UTC)
        wait_until(lambda: (datetime.now(UTC) - full_since).total_seconds() >= 4, what="four slots")
        filler.unlink()
        wait_until(lambda: healthz(base)[0] == 200, what="/healthz to recover")
        count = len(sink.requests_to("/tick"))
        wait_until(lambda: len(sink.requests_to("/tick")) > count + 1, what="fires again")
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    log = daemon.log()
    rows = job_runs(db, "tick")
    # A slot may be skipped at start-up on a loaded machine (the catch-up run still in flight
    # when the next second comes): only the slots from the outage on must not be.
    # After the outage the same holds (PRODUCT.md: the newest missed slot fires as the
    # `catchup` run; overlap skip): a slot may be skipped only while that catch-up was in
    # flight, never for anything else.
    outage = [r for r in rows if _seconds_between(filled_at.isoformat(), r["scheduled_for"]) >= 0]
    catchups = [r for r in outage if r["trigger"] == "catchup"]
    skipped = [r for r in outage if r["status"] == "skipped"]
    # In flight when the skip was decided (the row's created_at): the catch-up and the next
    # slot may be claimed in one step just after that slot's time, the catch-up starting then.
    for row in skipped:
        assert any(_in_flight(run, row["created_at"]) for run in catchups), log
    after = log.partition("cannot write the database")[2]
    assert after.count("still running") == len(skipped), log
    # A start-up gap ("no daemon was running") may come first on a loaded machine; the outage
    # itself is one missed row saying why, and nothing after it blames a missing daemon.
    missed = [r for r in rows if r["status"] == "missed" and r["id"] > first_id]
    assert len(missed) == 1, log
    assert "could not write the database" in missed[0]["error"]
    assert "no daemon" not in log.partition("cannot write the database")[2]
    assert json.loads(missed[0]["details"])["missed_count"] >= 3
