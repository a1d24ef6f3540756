"""The job page's charts as data for inline SVG drawn by the templates: a timeline with one
lane per outcome (so a mark's meaning is its labelled lane, not only its colour) and a
duration chart of the newest executed runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobctl.models import Run, RunStatus, RunTrigger

TIMELINE_WIDTH = 1000  # SVG user units of the time axis; the picture scales to its box
LANE_HEIGHT = 18
LABEL_WIDTH = 90
MIN_MARK = 2.0  # a mark stays visible however short the window makes it
MAX_MARKS = 400  # beyond this many in a window, runs are drawn per column of COLUMN units
COLUMN = 4.0

# Lanes, top to bottom: (key, label). A run goes in one lane: catch-up runs in theirs,
# failures (failed, interrupted) together, cancelled with the failures' neighbours.
LANES = (
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("timed_out", "timed out"),
    ("skipped", "skipped"),
    ("missed", "missed"),
    ("catchup", "catch-up"),
    ("in_flight", "in flight"),
)
LANE_OF_STATUS = {
    RunStatus.SUCCEEDED: "succeeded",
    RunStatus.FAILED: "failed",
    RunStatus.INTERRUPTED: "failed",
    RunStatus.CANCELLED: "failed",
    RunStatus.TIMED_OUT: "timed_out",
    RunStatus.SKIPPED: "skipped",
    RunStatus.MISSED: "missed",
    RunStatus.QUEUED: "in_flight",
    RunStatus.RUNNING: "in_flight",
    RunStatus.WAITING: "in_flight",
}


@dataclass(frozen=True)
class Mark:
    """One run on the timeline (or `count` runs of a lane drawn as one, `run` the newest):
    where it sits, its lane, and what its tooltip says."""

    x: float
    width: float
    lane: str
    y: float
    run: Run
    count: int = 1

    @property
    def status(self) -> str:
        return self.run.status.value

    @property
    def run_id(self) -> int:
        return self.run.id

    @property
    def title(self) -> str:
        """Made only for the marks drawn (thousands of runs may fold into a few marks)."""
        if self.count == 1:
            return _title(self.run)
        return f"{self.count} runs {_lane_label(self.lane)}, the newest: run {self.run.id}"


@dataclass(frozen=True)
class Timeline:
    """A window of a job's runs as lanes of marks; `counts` per lane for the text summary
    (slots, for missed: one missed row stands for every slot the daemon was away);
    `truncated` when the window held more runs than were read."""

    label: str
    start: datetime
    end: datetime
    marks: list[Mark]
    counts: dict[str, int]
    ticks: list[tuple[float, datetime]]
    truncated: bool
    width: int = TIMELINE_WIDTH
    label_width: int = LABEL_WIDTH
    lane_height: int = LANE_HEIGHT

    @property
    def height(self) -> int:
        return LANE_HEIGHT * len(LANES) + 20

    @property
    def lanes(self) -> list[tuple[str, str, float]]:
        return [(key, label, index * LANE_HEIGHT) for index, (key, label) in enumerate(LANES)]


def lane_of(run: Run) -> str:
    if run.trigger == RunTrigger.CATCHUP and not run.status.in_flight:
        return "catchup"
    return LANE_OF_STATUS.get(run.status, "failed")


def timeline(
    runs: Sequence[Run], now: datetime, span: timedelta, label: str, *, truncated: bool
) -> Timeline:
    """Marks for the runs scheduled in the `span` before `now`: one per run at its slot; a
    missed row covers the slots it stands for (until `missed_until`)."""
    start = now - span
    scale = TIMELINE_WIDTH / span.total_seconds()
    lane_y = {key: index * LANE_HEIGHT for index, (key, _) in enumerate(LANES)}
    marks: list[Mark] = []
    counts = {key: 0 for key, _ in LANES}
    for run in runs:
        if run.scheduled_for < start or run.scheduled_for > now:
            continue
        lane = lane_of(run)
        details = _details(run) if run.status == RunStatus.MISSED else {}
        until = _moment(details.get("missed_until"))
        x = (run.scheduled_for - start).total_seconds() * scale
        width = MIN_MARK
        if until is not None:
            width = max(MIN_MARK, (min(until, now) - run.scheduled_for).total_seconds() * scale)
        slots = details.get("missed_count")
        counts[lane] += slots if isinstance(slots, int) and slots > 0 else 1
        marks.append(
            Mark(
                x=round(min(x, TIMELINE_WIDTH - MIN_MARK), 2),
                width=round(width, 2),
                lane=lane,
                y=lane_y[lane] + 3,
                run=run,
            )
        )
    if len(marks) > MAX_MARKS:
        marks = _columns(marks)
    return Timeline(label, start, now, marks, counts, _ticks(start, span, scale), truncated)


def _columns(marks: list[Mark]) -> list[Mark]:
    """Too many marks to tell apart (a job firing every few seconds): one mark per lane and
    column, saying how many runs it stands for (missed spans are kept as they are)."""
    kept = [mark for mark in marks if mark.lane == "missed"]
    groups: dict[tuple[str, int], list[Mark]] = {}
    for mark in marks:
        if mark.lane != "missed":
            groups.setdefault((mark.lane, int(mark.x // COLUMN)), []).append(mark)
    for (lane, column), group in sorted(groups.items(), key=lambda item: item[0][1]):
        newest = max(group, key=lambda mark: mark.run_id)
        kept.append(Mark(column * COLUMN, COLUMN, lane, newest.y, newest.run, len(group)))
    return kept


def _lane_label(lane: str) -> str:
    return dict(LANES).get(lane, lane)


def _details(run: Run) -> dict[str, object]:
    details = json.loads(run.details) if run.details else {}
    return details if isinstance(details, dict) else {}


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _title(run: Run) -> str:
    when = run.scheduled_for.strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"run {run.id}: {run.status.value.replace('_', ' ')} ({run.trigger.value}) at {when}"
    if run.duration_ms is not None:
        text += f", {run.duration_ms} ms"
    return text


def _ticks(start: datetime, span: timedelta, scale: float) -> list[tuple[float, datetime]]:
    """Five evenly spaced time labels along the axis."""
    step = span / 4
    return [
        (round((step * index).total_seconds() * scale, 2), start + step * index)
        for index in range(5)
    ]


@dataclass(frozen=True)
class Bar:
    x: float
    height: float
    status: str
    title: str
    run_id: int


@dataclass(frozen=True)
class DurationChart:
    """Bars of the newest executed runs' durations, oldest left; `max_ms` tops the axis."""

    bars: list[Bar]
    max_ms: int
    width: int = TIMELINE_WIDTH
    height: int = 120
    bar_width: float = 0


def duration_chart(runs: Sequence[Run], count: int = 100) -> DurationChart:
    """`runs` newest first, as read; the chart shows at most `count` that have a duration."""
    timed = [run for run in runs if run.duration_ms is not None and run.status.executed]
    timed = timed[:count][::-1]
    top = max((run.duration_ms or 0 for run in timed), default=0) or 1
    width = TIMELINE_WIDTH / max(len(timed), 1)
    bars = [
        Bar(
            x=round(index * width, 2),
            height=round(max(1.0, (run.duration_ms or 0) / top * 100), 2),
            status=run.status.value,
            title=_title(run),
            run_id=run.id,
        )
        for index, run in enumerate(timed)
    ]
    return DurationChart(bars, top, bar_width=round(max(1.0, width * 0.8), 2))
