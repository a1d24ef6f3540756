"""What a daemon counts for /metrics, and the Prometheus text it is served as.

`Metrics` counts runs, their durations and lateness, and webhook calls since the daemon
started; `Gauges` is the state read when /metrics is asked; `render_metrics` makes the text.
No HTTP here: the listener serves it.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.models.runs import HOST

if TYPE_CHECKING:
    from jobctl.engine.record import Recorded

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60)


@dataclass
class Histogram:
    """Observations per job in buckets; each is counted in the first bucket it fits (one
    bisect per observation: the daemon observes twice a fire), cumulated when rendered."""

    buckets: tuple[float, ...]
    counts: dict[str, list[int]] = field(default_factory=dict)  # per bucket, +Inf last
    sums: dict[str, float] = field(default_factory=dict)

    def observe(self, job: str, value: float) -> None:
        counts = self.counts.get(job)
        if counts is None:
            counts = self.counts[job] = [0] * (len(self.buckets) + 1)
        counts[bisect_left(self.buckets, value)] += 1
        self.sums[job] = self.sums.get(job, 0.0) + value

    def render(self, name: str, help_text: str, daemon: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for job, counts in sorted(self.counts.items()):
            running = 0
            for bound, count in zip(self.buckets, counts, strict=False):
                running += count
                lines.append(
                    f"{_series(f'{name}_bucket', daemon, job=job, le=str(bound))} {running}"
                )
            total = running + counts[-1]
            lines.append(f"{_series(f'{name}_bucket', daemon, job=job, le='+Inf')} {total}")
            lines.append(f"{_series(f'{name}_sum', daemon, job=job)} {self.sums[job]:.6f}")
            lines.append(f"{_series(f'{name}_count', daemon, job=job)} {total}")
        return lines


@dataclass
class Metrics:
    """What the daemon counts since it started, for /metrics."""

    runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    lateness: Histogram = field(default_factory=lambda: Histogram(LATENESS_BUCKETS))
    webhooks: Counter[str] = field(default_factory=Counter)

    def record(self, job: str, status: str, duration: float, lateness: float) -> None:
        self.runs[(job, status)] += 1
        self.duration.observe(job, duration)
        self.lateness.observe(job, max(0.0, lateness))

    def count(self, item: Recorded) -> None:
        """A run recorded by the engine: its status, duration and lateness."""
        outcome, claim = item.outcome, item.claim
        late = (outcome.started_at - claim.scheduled_for).total_seconds()
        self.record(claim.job.name, outcome.status, outcome.duration_ms / 1000, late)


@dataclass(frozen=True)
class Gauges:
    """The host's state now, for /metrics."""

    started_at: datetime
    ticks: int  # scheduling steps taken
    in_flight: int  # runs executing
    jobs_by_state: Mapping[str, int]
    last_successes: Sequence[tuple[str, datetime]]  # (job, when it last succeeded), by name
    daemon_id: str = ""  # the daemon's id in the fleet
    queues: tuple[str, ...] = ()  # the queues it fires (empty: every queue)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _series(name: str, daemon: str, **labels: str) -> str:
    """`name{daemon="...",...}`: every series names the daemon it is from, so that a
    fleet's scrapes can be told apart and summed."""
    pairs = [("daemon", daemon), *labels.items()]
    return name + "{" + ",".join(f'{key}="{_label(value)}"' for key, value in pairs) + "}"


def render_metrics(metrics: Metrics, gauges: Gauges) -> str:
    """Prometheus text format: counters, histograms and gauges of this daemon and its jobs,
    every series labelled with the daemon's fleet id.

    Runs, durations, lateness, webhook calls, runs in flight and ticks are this daemon's own
    (sum them over a fleet); jobs by state and last successes are read from the database
    every daemon shares (the same on each: take the max over a fleet)."""
    daemon = gauges.daemon_id
    lines = [
        "# HELP jobctl_runs_total Runs this daemon finished since it started, by job and status.",
        "# TYPE jobctl_runs_total counter",
    ]
    for (job, status), count in sorted(metrics.runs.items()):
        lines.append(f"{_series('jobctl_runs_total', daemon, job=job, status=status)} {count}")
    lines += metrics.duration.render(
        "jobctl_run_duration_seconds", "How long this daemon's runs took.", daemon
    )
    lines += metrics.lateness.render(
        "jobctl_fire_lateness_seconds", "Start time minus scheduled time.", daemon
    )
    lines += [
        "# HELP jobctl_runs_in_flight Runs this daemon is executing now.",
        "# TYPE jobctl_runs_in_flight gauge",
        f"{_series('jobctl_runs_in_flight', daemon)} {gauges.in_flight}",
    ]
    lines += [
        "# HELP jobctl_jobs Jobs by state (in the database: the same on every daemon).",
        "# TYPE jobctl_jobs gauge",
    ]
    states = dict.fromkeys(("enabled", "paused", "completed"), 0)
    states.update(gauges.jobs_by_state)
    lines += [f"{_series('jobctl_jobs', daemon, state=state)} {n}" for state, n in states.items()]
    lines += [
        "# HELP jobctl_last_success_timestamp_seconds When each job last succeeded (in the "
        "database: the same on every daemon).",
        "# TYPE jobctl_last_success_timestamp_seconds gauge",
    ]
    for name, when in gauges.last_successes:
        series = _series("jobctl_last_success_timestamp_seconds", daemon, job=name)
        lines.append(f"{series} {when.timestamp():.3f}")
    lines += [
        "# HELP jobctl_webhook_requests_total Webhook calls by outcome.",
        "# TYPE jobctl_webhook_requests_total counter",
    ]
    lines += [
        f"{_series('jobctl_webhook_requests_total', daemon, outcome=outcome)} {count}"
        for outcome, count in sorted(metrics.webhooks.items())
    ]
    info = _series(
        "jobctl_daemon_info",
        daemon,
        host=HOST,
        pid=str(os.getpid()),
        queues=",".join(gauges.queues) or "*",
    )
    lines += [
        "# HELP jobctl_daemon_info This daemon in the fleet: its id, host, pid and queues.",
        "# TYPE jobctl_daemon_info gauge",
        f"{info} 1",
        "# HELP jobctl_daemon_start_timestamp_seconds When the daemon started.",
        "# TYPE jobctl_daemon_start_timestamp_seconds gauge",
        f"{_series('jobctl_daemon_start_timestamp_seconds', daemon)} "
        f"{gauges.started_at.timestamp():.3f}",
        "# HELP jobctl_ticks_total Scheduling steps taken.",
        "# TYPE jobctl_ticks_total counter",
        f"{_series('jobctl_ticks_total', daemon)} {gauges.ticks}",
    ]
    return "\n".join(lines) + "\n"
