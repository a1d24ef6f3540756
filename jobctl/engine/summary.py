"""The daemon's per-minute summary line: what fired and how it went, instead of a line per fire.

Per-fire lines are DEBUG (`--log-level debug`); failures keep their own WARNING line. Once a
minute (and when the daemon stops) one INFO line counts the fires, their outcomes, the
skipped and missed slots and the lateness of the scheduled fires (p50/p99).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobctl.models import RunStatus, RunTrigger

if TYPE_CHECKING:
    from jobctl.engine.claim import Step
    from jobctl.engine.record import Recorded

log = logging.getLogger("jobctl.daemon")

SUMMARY_EVERY = 60.0  # seconds between summary lines
LATE_TRIGGERS = frozenset({RunTrigger.SCHEDULE, RunTrigger.CATCHUP})


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class MinuteSummary:
    """Counts of one window of the daemon's work, logged as one line when the window ends."""

    started: float  # time.monotonic() when the window began
    every: float = SUMMARY_EVERY
    fired: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    missed: int = 0
    lateness_ms: list[float] = field(default_factory=list)

    def claimed(self, step: Step) -> None:
        self.fired += len(step.claims)
        self.skipped += len(step.skipped)
        self.missed += sum(count for _, count, _, _, _ in step.missed)

    def recorded(self, item: Recorded) -> None:
        claim, outcome = item.claim, item.outcome
        if outcome.status == RunStatus.SUCCEEDED:
            self.succeeded += 1
        else:
            self.failed += 1
        if claim.trigger in LATE_TRIGGERS:
            late = (outcome.started_at - claim.scheduled_for).total_seconds() * 1000
            self.lateness_ms.append(max(0.0, late))

    def line(self, seconds: float) -> str:
        return (
            f"last {seconds:.0f}s: {self.fired} fired, {self.succeeded} succeeded, "
            f"{self.failed} failed, {self.skipped} skipped, {self.missed} missed; "
            f"lateness p50 {percentile(self.lateness_ms, 0.5):.0f} ms, "
            f"p99 {percentile(self.lateness_ms, 0.99):.0f} ms"
        )

    def busy(self) -> bool:
        return bool(self.fired or self.succeeded or self.failed or self.skipped or self.missed)

    def tick(self, now: float, *, final: bool = False) -> None:
        """Log and start a new window if this one is over (or `final`); quiet when idle."""
        if not final and now - self.started < self.every:
            return
        if self.busy():
            log.info("%s", self.line(now - self.started))
        self.started = now
        self.fired = self.succeeded = self.failed = self.skipped = self.missed = 0
        self.lateness_ms = []
