"""Several real daemons on one PostgreSQL database: each slot fired once, queues obeyed,
a daemon killed with SIGKILL taken over within its lease, the fleet in `status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from jobctl.timeutil import from_db
from tests.realparts import Reply, Sink, jobctl_command, wait_until

ROOT = Path(__file__).resolve().parent.parent
LEASE = 3.0  # seconds: short, so that the test sees takeovers
JOBS_DEFAULT = 16
JOBS_GPU = 8


class PgDaemon:
    """`jobctl daemon` on a PostgreSQL URL as a real subprocess, its log in a file."""

    def __init__(self, url: str, log_dir: Path, *args: str) -> None:
        self.log_path = log_dir / f"daemon-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            jobctl_command("daemon", "--log-level", "debug", *args),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JOBCTL_DB": url},
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self) -> PgDaemon:
        wait_until(
            lambda: "daemon started" in self.log() or self.process.poll() is not None,
            20,
            "the daemon to start",
        )
        assert self.process.poll() is None, self.log()
        return self

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(40)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[list[PgDaemon]]:
    started: list[PgDaemon] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.stop()


def jobctl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jobctl_command(*args),
        capture_output=True,
        text=True,
        env={**os.environ, "JOBCTL_DB": url},
        timeout=60,
        cwd=ROOT,
    )


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def running_of(url: str, pid: int) -> list[tuple[Any, ...]]:
    """The `running` rows of the daemon (or any process) `pid`."""
    return rows(url, "SELECT id FROM runs WHERE status = 'running' AND owner_pid = %s", pid)


def apply_jobs(url: str, tmp_path: Path, sink: Sink) -> None:
    """JOBS_DEFAULT jobs on the default queue and JOBS_GPU on `gpu`, every second each."""
    entries = []
    for queue, count in (("default", JOBS_DEFAULT), ("gpu", JOBS_GPU)):
        for index in range(count):
            entries.append(
                f'[[jobs]]\nname = "{queue}-{index}"\nqueue = "{queue}"\naction = "http"\n'
                f'trigger = "every"\nschedule = "1s"\ntimezone = "UTC"\n'
                f'spec = {{ url = "{sink.url}/{queue}/{index}" }}\n'
            )
    path = tmp_path / "jobs.toml"
    path.write_text("version = 1\n\n" + "\n".join(entries))
    result = jobctl(url, "apply", "--file", str(path))
    assert result.returncode == 0, result.stderr


def test_three_daemons_one_killed_each_slot_fires_once(
    pg_url: str, tmp_path: Path, sink: Sink, fleet: list[PgDaemon]
) -> None:
    apply_jobs(pg_url, tmp_path, sink)
    for queue in ("default", "gpu"):
        for index in range(JOBS_DEFAULT):
            # Half a second per request: runs are in flight when the kill comes.
            sink.replies[f"/{queue}/{index}"] = Reply(delay=0.5)
    lease = ("--lease", f"{LEASE:g}s")
    victim_args = ("--queue", "default", "--queue", "gpu", *lease)
    victim = PgDaemon(pg_url, tmp_path, *victim_args).wait_ready()
    fleet += [
        victim,
        PgDaemon(pg_url, tmp_path, "--queue", "default", *lease).wait_ready(),
        PgDaemon(pg_url, tmp_path, "--queue", "gpu", *lease).wait_ready(),
    ]
    gpu_pids = {victim.pid, fleet[2].pid}
    time.sleep(4)  # a fixed sleep on purpose: the fleet fires for a while (checked after)

    # Kill 1, while it has runs in flight: restarted after the lease, so that a survivor
    # takes over its runs.
    killed = [victim.pid]
    wait_until(lambda: running_of(pg_url, victim.pid), 10, "the victim to have runs in flight")
    victim.kill()
    killed_at = [time.monotonic()]
    wait_until(
        lambda: (
            not rows(
                pg_url, "SELECT 1 FROM runs WHERE status = 'running' AND owner_pid = %s", killed[0]
            )
        ),
        LEASE + 4,
        "the survivors to take over the killed daemon's runs",
    )
    takeover_took = time.monotonic() - killed_at[0]
    victim = PgDaemon(pg_url, tmp_path, *victim_args).wait_ready()
    fleet.append(victim)
    gpu_pids.add(victim.pid)
    time.sleep(3)  # a fixed sleep on purpose: firing with three again

    # Kill 2: restarted at once (its start-up finds the dead process's runs on this host).
    killed.append(victim.pid)
    wait_until(lambda: running_of(pg_url, victim.pid), 10, "the victim to have runs in flight")
    victim.kill()
    killed_at.append(time.monotonic())
    victim = PgDaemon(pg_url, tmp_path, *victim_args).wait_ready()
    fleet.append(victim)
    gpu_pids.add(victim.pid)
    time.sleep(LEASE + 2)  # a fixed sleep on purpose: past the lease of the second kill

    left = rows(
        pg_url,
        "SELECT id FROM runs WHERE status = 'running' AND owner_pid = ANY(%s)",
        killed,
    )
    assert left == [], "runs of killed daemons still running after their lease"
    status = jobctl(pg_url, "status", "--json")
    assert status.returncode == 0, status.stderr
    live = json.loads(status.stdout)["daemons"]
    assert sorted(d["pid"] for d in live) == sorted(
        d.pid for d in fleet if d.process.poll() is None
    )
    for daemon in fleet:
        if daemon.process.poll() is None:
            assert daemon.stop() == 0, daemon.log()

    received = list(sink.received)
    assert len(received) > (JOBS_DEFAULT + JOBS_GPU) * 8
    # 0 slots fired twice, 0 runs sent twice
    slots = Counter(
        (r.headers["X-Jobctl-Job"], r.headers["X-Jobctl-Scheduled-For"]) for r in received
    )
    assert [slot for slot, count in slots.items() if count > 1] == []
    run_ids = Counter(int(r.headers["X-Jobctl-Run"]) for r in received)
    assert [run for run, count in run_ids.items() if count > 1] == []
    # 0 fires without a run row (of that job and slot)
    stored = {
        run_id: (job, slot)
        for run_id, job, slot in rows(
            pg_url,
            "SELECT runs.id, jobs.name, runs.scheduled_for FROM runs JOIN jobs "
            "ON jobs.id = runs.job_id WHERE runs.id = ANY(%s)",
            list(run_ids),
        )
    }
    for r in received:
        job, slot = stored[int(r.headers["X-Jobctl-Run"])]
        assert job == r.headers["X-Jobctl-Job"]
        assert _same_moment(slot, r.headers["X-Jobctl-Scheduled-For"])
    # nothing left running; queue placement obeyed on every fire
    assert rows(pg_url, "SELECT id FROM runs WHERE status = 'running'") == []
    gpu_owners = rows(
        pg_url,
        "SELECT DISTINCT runs.owner_pid FROM runs JOIN jobs ON jobs.id = runs.job_id "
        "WHERE jobs.queue = 'gpu' AND runs.owner_pid IS NOT NULL",
    )
    assert {pid for (pid,) in gpu_owners} <= gpu_pids
    # the killed daemon's runs were interrupted by a survivor within the lease (and a bit)
    assert takeover_took < LEASE + 2.5
    interrupted = rows(
        pg_url,
        "SELECT error FROM runs WHERE status = 'interrupted' AND owner_pid = ANY(%s)",
        killed,
    )
    assert any("lease" in error for (error,) in interrupted), interrupted
    # every job went on firing: a gap between two fires of a job is at most a slot (the kill
    # may come as the victim claims the slot after the one it fired: that run holds the
    # job's next slots back as in flight), the lease (renewed up to the kill), no wait for
    # a takeover (a survivor's loop wakes as the lease runs out) and the next slot: LEASE +
    # 2; the third second is for a loaded machine (a restarted daemon's first requests).
    for job in {r.headers["X-Jobctl-Job"] for r in received}:
        times = sorted(r.at for r in received if r.headers["X-Jobctl-Job"] == job)
        gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
        assert max(gaps) < LEASE + 3, (job, max(gaps))
    # no slot recorded missed: a daemon joining a live fleet is no gap
    assert rows(pg_url, "SELECT id FROM runs WHERE status = 'missed'") == []


def _same_moment(stored: str, header: str) -> bool:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return abs(parse(stored) - parse(header)) < timedelta(milliseconds=1)


def test_a_queue_without_a_live_daemon_is_a_problem_in_status_and_doctor(
    pg_url: str, tmp_path: Path, sink: Sink, fleet: list[PgDaemon]
) -> None:
    apply_jobs(pg_url, tmp_path, sink)
    gpu = PgDaemon(pg_url, tmp_path, "--queue", "gpu", "--listen", "127.0.0.1:0").wait_ready()
    fleet.append(gpu)
    wait_until(lambda: len(sink.requests_to("/gpu/0")) >= 2, 10, "gpu jobs to fire")

    def counted() -> dict[str, Any] | None:
        document: dict[str, Any] = json.loads(jobctl(pg_url, "status", "--json").stdout)
        fired = [d["fired_last_minute"] for d in document["daemons"]]
        return document if fired and fired[0] >= JOBS_GPU else None

    document = wait_until(counted, 10, "the heartbeat to count the fires")
    [entry] = document["daemons"]
    assert (entry["pid"], entry["queues"]) == (gpu.pid, ["gpu"])
    assert document["unserved_queues"] == [{"queue": "default", "jobs": JOBS_DEFAULT}]
    # /metrics names the daemon it is from
    with urllib.request.urlopen(f"{entry['listen']}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert f'jobctl_daemon_info{{daemon="{entry["id"]}",' in metrics
    assert f'pid="{gpu.pid}",queues="gpu"}} 1' in metrics
    samples = [line for line in metrics.splitlines() if line and not line.startswith("#")]
    assert samples and all(f'{{daemon="{entry["id"]}"' in line for line in samples)
    text = jobctl(pg_url, "status").stdout
    assert f"pid {gpu.pid}: queues gpu, up" in text
    assert f"queue default: {JOBS_DEFAULT} enabled jobs and no live daemon firing it" in text
    doctor = json.loads(jobctl(pg_url, "doctor", "--json").stdout)
    [queues] = [item for item in doctor if item["check"] == "queues"]
    assert queues["level"] == "warn" and "default (16 jobs)" in queues["message"]
    assert not [r for r in sink.received if r.path.startswith("/default/")]
    assert gpu.stop() == 0

    # A daemon for `default` comes: the slots that passed without one are missed, not lost.
    fleet.append(PgDaemon(pg_url, tmp_path, "--queue", "default").wait_ready())
    wait_until(lambda: sink.requests_to("/default/0"), 10, "default jobs to fire")
    missed = rows(
        pg_url,
        "SELECT DISTINCT jobs.name FROM runs JOIN jobs ON jobs.id = runs.job_id "
        "WHERE runs.status = 'missed'",
    )
    # (gpu jobs may have one too: their slots before their daemon was up on a loaded machine)
    assert {f"default-{i}" for i in range(JOBS_DEFAULT)} <= {name for (name,) in missed}
    # The stopped gpu daemon released its lease at once: status no longer lists it.
    live = json.loads(jobctl(pg_url, "status", "--json").stdout)["daemons"]
    assert [entry["queues"] for entry in live] == [["default"]]


def _slot_rows(url: str, queue: str) -> dict[str, list[tuple[str, str, str | None]]]:
    """Job -> its slot rows (status, scheduled_for, details), oldest first."""
    found: dict[str, list[tuple[str, str, str | None]]] = {}
    for name, status, slot, details in rows(
        url,
        "SELECT jobs.name, runs.status, runs.scheduled_for, runs.details FROM runs JOIN jobs "
        "ON jobs.id = runs.job_id WHERE jobs.queue = %s AND runs.trigger IN "
        "('schedule', 'catchup') ORDER BY runs.id",
        queue,
    ):
        found.setdefault(name, []).append((status, slot, details))
    return found


def _slots_covered(found: list[tuple[str, str, str | None]]) -> list[datetime]:
    """Every slot the rows stand for: a run's own, and each of a missed row's."""

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    slots = []
    for status, slot, details in found:
        if status != "missed":
            slots.append(parse(slot))
            continue
        data = json.loads(details or "{}")
        covered = [parse(slot) + timedelta(seconds=k) for k in range(data["missed_count"])]
        assert abs(covered[-1] - parse(data["missed_until"])) < timedelta(milliseconds=1), data
        slots += covered
    return sorted(slots)


def test_an_unserved_queue_gets_one_missed_row_per_job_whoever_sweeps(
    pg_url: str, tmp_path: Path, sink: Sink, fleet: list[PgDaemon]
) -> None:
    lease = ("--lease", f"{LEASE:g}s")
    gpu = PgDaemon(pg_url, tmp_path, "--queue", "gpu", *lease).wait_ready()
    fleet += [
        gpu,
        PgDaemon(pg_url, tmp_path, "--queue", "default", *lease).wait_ready(),
        PgDaemon(pg_url, tmp_path, "--queue", "default", *lease).wait_ready(),
    ]
    apply_jobs(pg_url, tmp_path, sink)  # after the daemons: no slot passed before them
    wait_until(lambda: all(sink.requests_to(f"/gpu/{i}") for i in range(JOBS_GPU)), 20, "gpu fires")
    assert gpu.stop() == 0  # a clean stop: gpu is unserved at once

    def counted() -> list[int] | None:
        found = rows(
            pg_url,
            "SELECT (runs.details::jsonb ->> 'missed_count')::int FROM runs JOIN jobs "
            "ON jobs.id = runs.job_id WHERE runs.status = 'missed'",
        )
        counts = [count for (count,) in found]
        return counts if len(counts) >= JOBS_GPU and min(counts) >= 6 else None

    # A few leases unserved, swept by two daemons: still one row per job, its count grown.
    counts = wait_until(counted, 40, "the sweeps to count 6 missed slots of every gpu job")
    assert len(counts) == JOBS_GPU, counts
    status = json.loads(jobctl(pg_url, "status", "--json").stdout)
    assert status["unserved_queues"] == [{"queue": "gpu", "jobs": JOBS_GPU}]
    text = jobctl(pg_url, "status").stdout
    # one line per live daemon, the unserved queue named as a problem
    for daemon in fleet[1:]:
        assert len([line for line in text.splitlines() if f"pid {daemon.pid}: " in line]) == 1
    # (status wraps its lines to the terminal's width, which differs under pytest-xdist)
    words = " ".join(text.split())
    assert "queue gpu: 8 enabled jobs and no live daemon firing it (its slots are" in words, text
    doctor = json.loads(jobctl(pg_url, "doctor", "--json").stdout)
    [queues] = [item for item in doctor if item["check"] == "queues"]
    assert queues["level"] == "warn" and "gpu (8 jobs)" in queues["message"]
    assert "jobctl daemon --queue gpu" in queues["message"]
    for daemon in fleet[1:]:
        assert daemon.log().count("queue gpu: no live daemon fires its 8 enabled jobs") <= 1
    assert sum("queue gpu: no live daemon fires" in daemon.log() for daemon in fleet[1:]) >= 1

    # The gpu daemon comes back: its gap walk catches up the latest slot and counts the
    # rest into the same row.
    back = PgDaemon(pg_url, tmp_path, "--queue", "gpu", *lease).wait_ready()
    fleet.append(back)
    since = len(sink.received)
    wait_until(
        lambda: (
            {r.path for r in list(sink.received)[since:] if r.path.startswith("/gpu/")}
            >= {f"/gpu/{i}" for i in range(JOBS_GPU)}
        ),
        20,
        "gpu jobs to fire again",
    )
    for daemon in fleet:
        if daemon.process.poll() is None:
            assert daemon.stop() == 0, daemon.log()

    for name, found in _slot_rows(pg_url, "gpu").items():
        assert [status for status, *_ in found].count("missed") == 1, (name, found)
        slots = _slots_covered(found)
        steps = [(b - a).total_seconds() for a, b in pairwise(slots)]
        # no slot counted twice, none lost: one a second from the first fire to the last
        assert all(abs(step - 1) < 0.001 for step in steps), (name, found)
    assert all(
        status != "missed"
        for found in _slot_rows(pg_url, "default").values()
        for status, *_ in found
    )


class HeldEventLock:
    """Another writer (a long `apply`, say) holding the event-order lock a second at a time,
    letting the writers queued behind it through one transaction each in between: every
    write of a daemon then waits about a second."""

    def __init__(self, url: str, hold: float) -> None:
        import psycopg

        from jobctl.store.postgres.events import EVENT_ORDER_LOCK

        self._conn = psycopg.connect(url, autocommit=True)
        self._key, self._hold = EVENT_ORDER_LOCK, hold
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._hold_in_bursts, daemon=True)

    def __enter__(self) -> HeldEventLock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._conn.close()

    def _hold_in_bursts(self) -> None:
        while not self._done.is_set():
            self._conn.execute("SELECT pg_advisory_lock(%s)", (self._key,))
            self._done.wait(self._hold)
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))


def lease_left(url: str, pid: int) -> float | None:
    """Seconds the lease of the live daemon `pid` still runs (None: it has none)."""
    found = rows(url, "SELECT lease_until FROM daemons WHERE pid = %s AND stopped_at IS NULL", pid)
    if not found:
        return None
    return (from_db(found[0][0]) - datetime.now(UTC)).total_seconds()


def test_a_daemon_whose_loop_is_kept_waiting_keeps_its_lease(
    pg_url: str, tmp_path: Path, sink: Sink, fleet: list[PgDaemon]
) -> None:
    apply_jobs(pg_url, tmp_path, sink)
    lease = ("--lease", f"{LEASE:g}s")
    busy = PgDaemon(pg_url, tmp_path, *lease).wait_ready()
    fleet += [busy, PgDaemon(pg_url, tmp_path, *lease).wait_ready()]  # would take it over
    wait_until(lambda: len(sink.received) >= 20, 20, "the fleet to fire")
    # Every claim and recording of both daemons waits about a second for the lock, for
    # three leases: a heartbeat that waited behind them would miss its lease.
    margins = []
    with HeldEventLock(pg_url, hold=1.0):
        end = time.monotonic() + 3 * LEASE
        while time.monotonic() < end:
            margins.append(lease_left(pg_url, busy.pid))
            time.sleep(0.1)  # a fixed sleep on purpose: sampling the lease, not a wait
    assert None not in margins, "the busy daemon's lease was taken over"
    assert min(m for m in margins if m is not None) > 0, margins
    fired = len(sink.received)
    wait_until(lambda: len(sink.received) > fired + 20, 20, "the fleet to fire on")
    assert "lease had expired" not in busy.log()
    interrupted = rows(pg_url, "SELECT id FROM runs WHERE status = 'interrupted'")
    assert interrupted == []
    assert busy.stop() == 0


def test_a_stopped_daemon_loses_its_lease_and_joins_again_when_continued(
    pg_url: str, tmp_path: Path, sink: Sink, fleet: list[PgDaemon]
) -> None:
    apply_jobs(pg_url, tmp_path, sink)
    for queue in ("default", "gpu"):
        for index in range(JOBS_DEFAULT):
            sink.replies[f"/{queue}/{index}"] = Reply(delay=0.5)  # runs in flight when stopped
    lease = ("--lease", f"{LEASE:g}s")
    stopped = PgDaemon(pg_url, tmp_path, *lease).wait_ready()
    fleet += [stopped, PgDaemon(pg_url, tmp_path, *lease).wait_ready()]
    wait_until(lambda: running_of(pg_url, stopped.pid), 10, "the daemon to have runs in flight")
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        wait_until(lambda: lease_left(pg_url, stopped.pid) is None, LEASE + 10, "a takeover")
        assert time.monotonic() - stopped_at >= LEASE - 1.5  # not before its lease ran out
        assert running_of(pg_url, stopped.pid) == []  # its runs interrupted by the other
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    wait_until(lambda: "lease had expired" in stopped.log(), 20, "the daemon to notice")
    wait_until(lambda: lease_left(pg_url, stopped.pid), 10, "the daemon to join again")
    assert stopped.stop() == 0
