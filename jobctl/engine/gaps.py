"""What a gap means: the slots a job's schedule had while no daemon was watching.

Pure rules, no store: count the slots of a gap and pick the newest ones the catch-up policy
fires again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jobctl.schedule import EverySchedule, Schedule

MAX_COUNTED_SLOTS = 50_000  # beyond this a cron gap's size is estimated, not walked

TINY = timedelta(microseconds=1)


@dataclass
class Gap:
    count: int
    last: datetime | None
    recent: list[datetime]  # the newest slots within the catch-up window, oldest first
    newest_missed: datetime | None  # the newest slot that is not in recent
    estimated: bool


def walk_gap(
    timetable: Schedule, first: datetime, end: datetime, window_start: datetime, keep: int
) -> Gap:
    """Count the slots in [first, end) and keep the newest `keep` of them within the window."""
    if isinstance(timetable, EverySchedule):
        return _every_gap(timetable, first, end, window_start, keep)
    recent: list[datetime] = []
    before: datetime | None = None
    count = 0
    slot: datetime | None = first
    last = None
    while slot is not None and slot < end and count < MAX_COUNTED_SLOTS:
        count += 1
        last = slot
        if keep and slot >= window_start:
            recent.append(slot)
            if len(recent) > keep:
                before = recent.pop(0)
        elif not recent:
            before = slot
        slot = timetable.next_after(slot)
    estimated = slot is not None and slot < end
    if estimated and last is not None and count > 1:
        # A very long gap of a very frequent cron job: estimate the rest from the pace so far.
        pace = (last - first) / (count - 1)
        count += int((end - last) / pace) if pace else 0
    return Gap(count, last, recent, before, estimated)


def _every_gap(
    timetable: EverySchedule, first: datetime, end: datetime, window_start: datetime, keep: int
) -> Gap:
    """Intervals keep exact spacing, so a gap of any size is counted by arithmetic."""
    after_gap = timetable.next_after(end - TINY)
    assert after_gap is not None
    last = after_gap - timetable.every
    if last < first:
        last = first
    count = int((last - first) / timetable.every) + 1
    recent: list[datetime] = []
    slot = last
    while keep and len(recent) < keep and slot >= first and slot >= window_start:
        recent.insert(0, slot)
        slot = slot - timetable.every
    return Gap(count, last, recent, slot if slot >= first else None, False)
