"""The daemon's log at the default level: one summary line a minute, failures still shout."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobctl.engine.claim import Claim, Step
from jobctl.engine.record import Recorded
from jobctl.engine.summary import MinuteSummary, percentile
from jobctl.models import RunTrigger
from tests.conftest import Invoke
from tests.realparts import DaemonProcess, job_runs, wait_until

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_default_level_logs_failures_and_a_summary_not_each_fire(
    db_path: Path, jobctl: Invoke
) -> None:
    jobctl("add", "good", "--exec", "true", "--every", "1s")
    jobctl("add", "bad", "--exec", "exit 3", "--every", "1s")
    daemon = DaemonProcess(db_path, "--log-level", "info").wait_ready()
    try:
        wait_until(
            lambda: len(job_runs(db_path, "good")) >= 3 and len(job_runs(db_path, "bad")) >= 2,
            what="a few fires of each job",
        )
    finally:
        assert daemon.stop() == 0, daemon.log()
    log = daemon.log()
    assert "good run" not in log, log  # successes are only counted
    failed = [line for line in log.splitlines() if "bad run" in line]
    assert failed and all("WARNING" in line and "failed exit 3" in line for line in failed), log
    summary = [line for line in log.splitlines() if " fired, " in line]
    assert len(summary) == 1 and " INFO " in summary[0], log  # the last window, at stop
    assert "0 skipped, 0 missed; lateness p50" in summary[0]


def test_debug_level_keeps_the_line_per_fire(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "good", "--exec", "true", "--every", "1s")
    daemon = DaemonProcess(db_path).wait_ready()  # the helper asks for debug
    try:
        wait_until(lambda: "good run" in daemon.log(), what="a fire's own line")
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert "succeeded exit 0" in daemon.log()


def _recorded(status: str, late_ms: int, trigger: RunTrigger = RunTrigger.SCHEDULE) -> Recorded:
    from jobctl.actions import Outcome

    claim = Claim.__new__(Claim)
    claim.trigger, claim.scheduled_for = trigger, T0
    started = T0 + timedelta(milliseconds=late_ms)
    return Recorded(claim, Outcome(status=status, started_at=started, finished_at=started))  # type: ignore[arg-type]


def test_summary_counts_a_window_and_is_quiet_when_idle(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobctl.daemon")
    summary = MinuteSummary(started=100.0)
    step = Step(claims=[Claim.__new__(Claim)] * 3)
    step.skipped.append(("j", T0, "schedule"))
    step.missed.append(("j", 4, T0, T0, "no daemon"))
    summary.claimed(step)
    for late in (5, 7, 900):
        summary.recorded(_recorded("succeeded", late))
    summary.recorded(_recorded("failed", 1, RunTrigger.MANUAL))  # not a slot: no lateness
    summary.tick(159.0)
    assert not caplog.records  # the minute is not over
    summary.tick(160.0)
    assert [r.getMessage() for r in caplog.records] == [
        "last 60s: 3 fired, 3 succeeded, 1 failed, 1 skipped, 4 missed; "
        "lateness p50 7 ms, p99 900 ms"
    ]
    summary.tick(230.0)
    assert len(caplog.records) == 1  # nothing happened: no line


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.99) == 0.0
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0
