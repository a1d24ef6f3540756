"""Cancel and rerun: `runs cancel`, `cancel NAME`, `runs rerun`; in-process for the rules,
with a real daemon, a real `jobctl run` and real process groups for the rest."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobctl import engine, runs
from jobctl.actions import Outcome, interrupted
from jobctl.cancels import cancel_run
from jobctl.catalog import add_job, get_job
from jobctl.engine.inflight import TIMER_SLACK, InFlight
from jobctl.models import POLICY_NAMES, JobChange
from jobctl.paths import resolve_db_path
from jobctl.processes import group_members
from jobctl.store import SqliteStore, open_store
from jobctl.timeutil import utcnow
from tests.conftest import BOTH_STORES, Invoke
from tests.realparts import (
    ROOT,
    DaemonProcess,
    Reply,
    Sink,
    job_runs,
    jobctl_command,
    query,
    run_jobctl,
    wait_until,
    wait_until_async,
)
from tests.stream_server import StreamServer

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
OWNER = runs.Owner.this_process()


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return open_store(tmp_path / "jobctl.db")


def add(store: SqliteStore, name: str, **options: str) -> None:
    policies = {key: value for key, value in options.items() if key in POLICY_NAMES}
    fields = {key: value for key, value in options.items() if key not in POLICY_NAMES}
    change = JobChange(name=name, command="true", timezone="UTC", policies=policies, **fields)
    add_job(store, change, T0)


def claim_one(store: SqliteStore, name: str, now: datetime = T0) -> engine.Claim:
    started = engine.start_manual(store, name, now, OWNER)
    assert isinstance(started, engine.Claim)
    return started


def cancelled(claim: engine.Claim, at: datetime) -> Outcome:
    return Outcome(
        status="cancelled",
        started_at=claim.claimed_at,
        finished_at=at,
        error=engine.CANCELLED_BY_REQUEST,
    )


# ------------------------------------------------------------------ the rules, in-process


def test_a_cancelled_run_is_executed_not_failed_and_never_retried(store: SqliteStore) -> None:
    add(store, "up", manual="true", retries="3", max_failures="1")
    add(store, "on_fail", manual="true", after=(("up", "failed"),))
    add(store, "on_end", manual="true", after=(("up", "finished"),))
    claim = claim_one(store, "up")
    [recorded] = engine.record_outcomes(store, [(claim, cancelled(claim, T0))], T0)
    assert recorded.retry_at is None and not recorded.auto_paused
    assert recorded.chained == ["on_end"]  # "after any end" follows, "after a failure" not
    job = get_job(store, "up")
    assert (job.runs_total, job.runs_failed, job.runs_succeeded) == (1, 0, 0)
    assert (job.consecutive_failures, job.state, job.last_status) == (0, "enabled", "cancelled")
    statuses = [r.status for r in store.list_runs(_all_runs())]
    assert statuses.count("queued") == 1  # on_end's chained run; no retry of `up`


def test_a_cancelled_run_leaves_the_failures_in_a_row_as_they_were(store: SqliteStore) -> None:
    add(store, "f", manual="true", max_failures="2")
    claim = claim_one(store, "f")
    failed = Outcome(status="failed", started_at=T0, finished_at=T0, exit_code=1)
    engine.record_outcomes(store, [(claim, failed)], T0)
    claim = claim_one(store, "f", T0 + timedelta(minutes=1))
    engine.record_outcomes(store, [(claim, cancelled(claim, T0 + timedelta(minutes=1)))], T0)
    assert get_job(store, "f").consecutive_failures == 1


def test_cancelling_a_queued_run_ends_it_at_once(store: SqliteStore) -> None:
    add(store, "q", manual="true")
    run_id, _ = engine.queue_manual(store, "q", T0)
    asked = cancel_run(store, run_id, T0 + timedelta(seconds=1))
    assert asked.status == "cancelled"
    run = store.get_run(run_id)
    assert run is not None and run.status == "cancelled" and run.started_at is None
    assert run.error == "cancelled by request" and run.cancel_requested_at is not None
    assert get_job(store, "q").runs_total == 1 and get_job(store, "q").runs_failed == 0
    [event] = [e for e in store.events_after(0) if e.run == run_id]
    assert (event.type, event.job, event.data["status"]) == ("run.finished", "q", "cancelled")
    assert store.due_queued_runs(T0 + timedelta(minutes=1)) == []


class _Slow:
    """An action that runs until cancelled, then hands on what it had produced."""

    async def fire(self, claim: engine.Claim, env: Mapping[str, str]) -> Outcome:
        started = utcnow()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as exc:
            raise interrupted(started, output="half of it\n") from exc
        raise AssertionError("not cancelled")

    async def close(self) -> None:
        pass


def test_the_daemons_step_stops_a_run_asked_to_cancel(store: SqliteStore, tmp_path: Path) -> None:
    add(store, "slow", manual="true", retries="2")
    add(store, "other", manual="true")
    recorded: list[engine.Recorded] = []

    async def scenario() -> None:
        runner = engine.Runner(engine.Limits(), actions=_Slow())
        in_flight = InFlight(store, runner, recorded.extend)
        claims = [claim_one(store, "slow", utcnow()), claim_one(store, "other", utcnow())]
        in_flight.start(claims, {})
        await asyncio.sleep(0.01)
        in_flight.step(utcnow(), {}, owner=OWNER, awake_since=utcnow())  # nothing asked yet
        other_process = open_store(tmp_path / "jobctl.db")  # `runs cancel`'s connection
        assert cancel_run(other_process, claims[0].run_id, utcnow()).status == "running"
        other_process.close()
        in_flight.step(utcnow(), {}, owner=OWNER, awake_since=utcnow())
        await asyncio.sleep(0.05)
        in_flight.flush()
        assert len(in_flight) == 1  # the other run goes on
        await in_flight.settle(0.01)  # a stopping daemon: that one ends interrupted
        in_flight.finish(OWNER)
        await runner.close()

    asyncio.run(scenario())
    [first] = recorded
    assert (first.outcome.status, first.outcome.output) == ("cancelled", "half of it\n")
    slow = [r for r in store.list_runs(_all_runs()) if r.job == "slow"]
    assert [(r.status, r.error) for r in slow] == [("cancelled", "cancelled by request")]
    other = [r for r in store.list_runs(_all_runs()) if r.job == "other"]
    assert [r.status for r in other] == ["interrupted"]


class _Quick:
    """An action that succeeds at once, noting which runs it fired."""

    def __init__(self) -> None:
        self.fired: list[int] = []

    async def fire(self, claim: engine.Claim, env: Mapping[str, str]) -> Outcome:
        self.fired.append(claim.run_id)
        now = utcnow()
        return Outcome(status="succeeded", started_at=now, finished_at=now)

    async def close(self) -> None:
        pass


def test_runs_claimed_ahead_are_in_flight_before_their_moment(
    store: SqliteStore, tmp_path: Path
) -> None:
    """A run waiting for its moment (claimed ahead, jitter) is in flight: `runs cancel` ends
    it cancelled without firing it; a stopping daemon fires those whose moment comes within
    the grace and leaves the others interrupted, never fired."""
    for name in ("cancelled", "soon", "late", "now"):
        add(store, name, manual="true")
    recorded: list[engine.Recorded] = []
    quick = _Quick()

    async def scenario() -> None:
        runner = engine.Runner(engine.Limits(), actions=quick)
        in_flight = InFlight(store, runner, recorded.extend)
        claims = {name: claim_one(store, name, utcnow()) for name in ("cancelled", "soon", "late")}
        claims["cancelled"].delay = claims["late"].delay = 60.0
        claims["soon"].delay = 0.3
        in_flight.start(list(claims.values()), {})
        in_flight.start([claim_one(store, "now", utcnow())], {})
        await asyncio.sleep(0.01)
        assert len(in_flight) == 3  # "now" has fired; the others wait for their moment
        other_process = open_store(tmp_path / "jobctl.db")  # `runs cancel`'s connection
        assert cancel_run(other_process, claims["cancelled"].run_id, utcnow()).status == "running"
        other_process.close()
        in_flight.step(utcnow(), {}, owner=OWNER, awake_since=utcnow())
        await asyncio.sleep(0.01)
        in_flight.flush()
        assert len(in_flight) == 2  # "cancelled" has ended; two wait on
        await in_flight.settle(1.0)  # a stopping daemon
        in_flight.finish(OWNER)
        await runner.close()

    asyncio.run(scenario())
    statuses = {r.job: (r.status, r.error) for r in store.list_runs(_all_runs())}
    assert statuses == {
        "cancelled": ("cancelled", "cancelled by request"),
        "now": ("succeeded", None),
        "soon": ("succeeded", None),
        "late": ("interrupted", statuses["late"][1]),
    }
    fired = {r.job for r in store.list_runs(_all_runs()) if r.id in quick.fired}
    assert fired == {"now", "soon"}


def test_runs_claimed_ahead_share_a_timer_per_tick_and_none_starts_before_its_moment(
    store: SqliteStore,
) -> None:
    """The runs whose moments fall in one TIMER_SLACK tick wait on one timer (one wake-up
    of the loop, not one each), and each starts at or after its moment."""
    names = [f"j{index}" for index in range(40)]
    for name in names:
        add(store, name, manual="true")
    started: dict[int, float] = {}
    moments: dict[int, float] = {}

    class _Timed(_Quick):
        async def fire(self, claim: engine.Claim, env: Mapping[str, str]) -> Outcome:
            started[claim.run_id] = time.monotonic()
            return await super().fire(claim, env)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        timers: list[float] = []
        call_at = loop.call_at

        def counting_call_at(when: float, callback: Any, *args: Any, **kw: Any) -> Any:
            if getattr(callback, "__func__", None) is InFlight._launch:  # not asyncio's sleeps
                timers.append(when)
            return call_at(when, callback, *args, **kw)

        loop.call_at = counting_call_at  # type: ignore[method-assign]
        runner = engine.Runner(engine.Limits(), actions=_Timed())
        in_flight = InFlight(store, runner, lambda _batch: None)
        claims = [claim_one(store, name, utcnow()) for name in names]
        made = time.monotonic()
        # 40 moments 0.25 ms apart (10 ms in all), half a second on: a claim whose moment
        # passed before start() (a stalled machine) would fire at once, with no timer
        for index, claim in enumerate(claims):
            claim.made_at, claim.delay = made, 0.5 + index * 0.00025
            moments[claim.run_id] = made + claim.delay
        in_flight.start(claims, {})
        await wait_until_async(lambda: len(started) == len(claims), 10.0)
        in_flight.flush()
        await runner.close()
        # 10 ms of moments span at most 3 ticks of 5 ms (4 with a clock between two)
        assert 2 <= len(timers) <= 1 + math.ceil(0.01 / TIMER_SLACK) + 1

    asyncio.run(scenario())
    early = {run_id: moments[run_id] - at for run_id, at in started.items() if at < moments[run_id]}
    assert early == {}


def _all_runs() -> Any:
    from jobctl.models import RunSelection

    return RunSelection(limit=0)


# ------------------------------------------------------------------ the command line


@BOTH_STORES
def test_cancel_refusals(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "q", "--exec", "true", "--manual")
    assert jobctl("runs", "cancel", "99").exit_code == 3
    assert jobctl("runs", "cancel", "-1").exit_code == 2
    result = jobctl("cancel", "q")
    assert result.exit_code == 1 and result.stderr == "jobctl: no run of q is in flight\n"
    assert jobctl("cancel", "nope").exit_code == 3
    assert jobctl("run", "q").exit_code == 0
    [run] = job_runs(db_path, "q")
    result = jobctl("runs", "cancel", str(run["id"]))
    assert result.exit_code == 1
    assert result.stderr == f"jobctl: run {run['id']} already ended (succeeded)\n"
    assert jobctl("runs", "rerun", "99").exit_code == 3
    result = jobctl("runs", "rerun", str(run["id"]))
    assert result.exit_code == 4  # no daemon to fire it
    assert "jobctl run NAME" in result.stderr and "--queue" not in result.stderr  # no such option


@BOTH_STORES
def test_cancel_of_queued_runs_by_job_name(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "q", "--exec", "true", "--manual", "--overlap", "allow")
    store = open_store(resolve_db_path(None))  # the test's database, on either store
    ids = [engine.queue_manual(store, "q", utcnow())[0] for _ in range(2)]
    store.close()
    result = jobctl("cancel", "q", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"run": run_id, "job": "q", "status": "cancelled"} for run_id in ids
    ]
    assert [r["status"] for r in job_runs(db_path, "q")] == ["cancelled", "cancelled"]


def test_cancel_of_a_run_whose_commands_ignore_sigterm_leaves_no_process(
    db_path: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    # the shell and both children ignore SIGTERM: only the SIGKILL after the grace ends them
    command = f"trap '' TERM; echo so far; sleep 60 & sleep 60 & touch {started}; wait"
    add_cmd = ["add", "stubborn", "--exec", command, "--manual", "--retries", "2"]
    assert run_jobctl(db_path, *add_cmd).returncode == 0
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        assert run_jobctl(db_path, "run", "stubborn", "--queue").returncode == 0
        wait_until(started.exists, what="the command to start")
        [run] = wait_until(
            lambda: [r for r in job_runs(db_path, "stubborn") if r["pgid"]], what="its group"
        )
        assert len(group_members(run["pgid"]) or []) == 3
        clock = time.monotonic()
        result = run_jobctl(db_path, "runs", "cancel", str(run["id"]))
        took = time.monotonic() - clock
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"cancelled run {run['id']} of stubborn\n"
        assert 4 < took < 10  # the 5 s grace between SIGTERM and SIGKILL, then recorded
        assert group_members(run["pgid"]) == []
        [row] = job_runs(db_path, "stubborn")  # and no retry
        assert (row["status"], row["error"]) == ("cancelled", "cancelled by request")
        assert row["output"].startswith("so far")
        [job] = query(db_path, "SELECT * FROM jobs WHERE name = 'stubborn'")
        assert (job["runs_total"], job["runs_failed"], job["consecutive_failures"]) == (1, 0, 0)
        assert "cancel requested" in daemon.log()
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_cancel_reaches_a_jobctl_run_here(db_path: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    command = f"echo so far; touch {started}; sleep 30"
    assert run_jobctl(db_path, "add", "here", "--exec", command, "--manual").returncode == 0
    process = subprocess.Popen(
        jobctl_command("run", "here"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JOBCTL_DB": str(db_path)},
        cwd=ROOT,
    )
    try:
        wait_until(started.exists, what="the run to start")
        result = run_jobctl(db_path, "cancel", "here", "--no-wait")
        assert result.returncode == 0, result.stderr
        [run] = job_runs(db_path, "here")
        assert result.stdout == f"asked to cancel run {run['id']} of here\n"
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, err
    assert "cancelled" in err and out.startswith("so far")
    [run] = job_runs(db_path, "here")
    assert (run["status"], run["error"]) == ("cancelled", "cancelled by request")


def test_rerun_of_a_webhook_run_carries_the_same_body(
    jobctl: Invoke, db_path: Path, sink: Sink
) -> None:
    jobctl("add", "hooked", "--url", f"{sink.url}/in", "--manual", "--forward-payload")
    secret = json.loads(jobctl("hook", "enable", "hooked", "--json").stdout)["secret"]
    daemon = DaemonProcess(db_path, "--listen", "127.0.0.1:0").wait_ready()
    try:
        [row] = wait_until(
            lambda: query(db_path, "SELECT listen FROM daemon WHERE listen IS NOT NULL"),
            what="the listener",
        )
        request = urllib.request.Request(
            f"{row['listen']}/hooks/hooked",
            data=b'{"ref": "main"}',
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            original = json.loads(response.read())["run"]
        wait_until(lambda: sink.requests_to("/in"), what="the webhook's run")
        result = run_jobctl(db_path, "runs", "rerun", str(original), "--wait", "--json")
        assert result.returncode == 0, result.stderr
        rerun = json.loads(result.stdout)
        assert (rerun["trigger"], rerun["status"], rerun["rerun_of"]) == (
            "rerun",
            "succeeded",
            original,
        )
        first, second = sink.requests_to("/in")
        assert (first.body, second.body) == (b'{"ref": "main"}',) * 2
        assert second.headers["X-Jobctl-Run"] == str(rerun["id"])
        shown = run_jobctl(db_path, "runs", "show", str(rerun["id"])).stdout
        assert re.search(rf"^rerun of: +{original}$", shown, re.MULTILINE), shown
    finally:
        assert daemon.stop() == 0, daemon.log()


@BOTH_STORES
def test_cancel_by_name_aborts_the_request_and_drops_the_queued_run(
    db_path: Path, sink: Sink
) -> None:
    sink.replies["/slow"] = Reply(delay=20)
    add_cmd = ["add", "slow", "--url", f"{sink.url}/slow", "--manual", "--overlap", "queue"]
    assert run_jobctl(db_path, *add_cmd).returncode == 0
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        for _ in range(2):
            assert run_jobctl(db_path, "run", "slow", "--queue").returncode == 0
        wait_until(lambda: sink.requests_to("/slow"), what="the request")
        first, second = (r["id"] for r in job_runs(db_path, "slow"))
        clock = time.monotonic()
        result = run_jobctl(db_path, "cancel", "slow")
        assert time.monotonic() - clock < 5  # the request is aborted, not waited for
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"cancelled run {first} of slow\ncancelled run {second} of slow\n"
        rows = job_runs(db_path, "slow")
        assert [r["status"] for r in rows] == ["cancelled", "cancelled"]
        assert json.loads(rows[0]["snapshot"])["url"] == f"{sink.url}/slow"  # what was sent
        assert rows[1]["started_at"] is None
        assert len(sink.requests_to("/slow")) == 1
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_cancel_of_a_streaming_agent_run_keeps_the_answer_so_far_and_the_request(
    db_path: Path,
) -> None:
    with StreamServer(delay=0.3) as server:
        agent_cmd = ["agent", "add", "local", "--url", server.openai_url, "--model", "m"]
        assert run_jobctl(db_path, *agent_cmd).returncode == 0
        prompt = " ".join(f"w{n}" for n in range(40))  # 40 words: 12 s of answer
        add_cmd = ["add", "story", "--agent", "local", "--prompt", prompt, "--manual"]
        assert run_jobctl(db_path, *add_cmd).returncode == 0
        daemon = DaemonProcess(db_path).wait_ready()
        try:
            assert run_jobctl(db_path, "run", "story", "--queue").returncode == 0
            wait_until(
                lambda: query(db_path, "SELECT 1 FROM run_output WHERE text LIKE '%w0%'"),
                what="the first words of the answer",
            )
            [run] = job_runs(db_path, "story")
            result = run_jobctl(db_path, "runs", "cancel", str(run["id"]))
            assert result.returncode == 0, result.stderr
        finally:
            assert daemon.stop() == 0, daemon.log()
    [row] = job_runs(db_path, "story")
    assert (row["status"], row["error"]) == ("cancelled", "cancelled by request")
    assert row["output"].startswith("answer to: w0")  # what the follower saw, kept
    assert json.loads(row["snapshot"])["prompt"] == prompt  # what was sent
