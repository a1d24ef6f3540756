"""Next fire times: cron (Debian semantics, via cronsim), aligned intervals, one-shots.

This is the only module that imports cronsim, and it does so inside functions so that
importing jobctl.schedule stays cheap for commands that never compute a fire time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from jobctl.errors import InvalidInput
from jobctl.timeutil import format_duration, get_zone, parse_duration, parse_time

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

TRIGGERS = ("cron", "every", "once", "manual")

# cronsim's own order once it has added the seconds field to a five-field expression.
_FIELD_NAMES = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_DAY_NAMES = re.compile(r"SUN|MON|TUE|WED|THU|FRI|SAT")
# The largest value of each field: a step beyond it is refused, as cronie does (cronsim
# would take `*/99999999999999999999` as "once, at the start of the range").
_FIELD_MAX = {
    "second": 59,
    "minute": 59,
    "hour": 23,
    "day-of-month": 31,
    "month": 12,
    "day-of-week": 7,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MINUTE = timedelta(minutes=1)
# Any fixed start works for validating an expression: parsing does not depend on it.
_PARSE_START = datetime(2000, 1, 1, tzinfo=UTC)


class Schedule(Protocol):
    """A job's timetable: the object that answers "when is the next slot?".

    A job's `schedule` is the text it was given (a cron expression, an interval, a time);
    the `Schedule` built from that text is called its **timetable** wherever it is held
    (`timetable = job.build_schedule()`), so "plan" keeps its one meaning: the preview of an
    `apply` or an `import`.
    """

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire strictly after `after`, in the job's zone; None if none is left."""
        ...


def _instant(moment: datetime) -> datetime:
    """The same moment in UTC: the only safe way to compare datetimes of one ZoneInfo."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC)


# ---------------------------------------------------------------- cron


class CronSchedule:
    """A cron expression as written (preset, 5 fields, or 6 with seconds first) in a zone."""

    def __init__(self, expr: str, zone: ZoneInfo) -> None:
        self.expr = expr
        self.zone = zone
        fields = _cron_fields(expr)
        # The five Unix fields always go to cronsim as a five-field expression, so its
        # Debian DST handling applies; a leading seconds field is expanded by us.
        self._five = " ".join(fields[-5:])
        self._seconds: list[int] | None = None
        self._never = False
        parsed = _parse_cron(expr, fields)
        if parsed is None:
            self._never = True
        elif len(fields) == 6:
            self._seconds = sorted(parsed.seconds)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r}, {self.zone.key!r})"

    def next_after(self, after: datetime) -> datetime | None:
        if self._never:
            return None
        if self._seconds is None:
            return self._next_minute_after(after)
        return self._next_second_after(after, self._seconds)

    def _next_minute_after(self, after: datetime) -> datetime | None:
        """The five-field fire strictly after `after`, compared as UTC instants."""
        from cronsim import CronSim

        limit = _instant(after)
        for fire in CronSim(self._five, limit.astimezone(self.zone)):
            # Started inside a repeated hour, cronsim (naive local time for fixed-time
            # jobs) can yield a time before its start: skip until strictly after.
            if _instant(fire) > limit:
                return _instant(fire).astimezone(self.zone)
        return None

    def _next_second_after(self, after: datetime, seconds: list[int]) -> datetime | None:
        limit = _instant(after)
        # A fire minute that began less than a minute ago may still have seconds to come.
        minute = self._next_minute_after(limit - _MINUTE)
        while minute is not None:
            start = _instant(minute)
            for second in seconds:
                fire = start + timedelta(seconds=second)
                if fire > limit:
                    return fire.astimezone(self.zone)
            minute = self._next_minute_after(minute)
        return None


def _expand_preset(expr: str) -> str:
    text = expr.strip()
    if not text.startswith("@"):
        return text
    key = text.lower()
    if key == "@reboot":
        raise InvalidInput(f"invalid cron expression {expr!r}: @reboot is not supported")
    if key not in PRESETS:
        raise InvalidInput(
            f"invalid cron expression {expr!r}: unknown preset; use one of {', '.join(PRESETS)}"
        )
    return PRESETS[key]


def _cron_fields(expr: str) -> list[str]:
    """Split into 5 or 6 fields, refusing wrong counts and Quartz syntax."""
    fields = _expand_preset(expr).upper().split()
    if len(fields) == 7:
        raise InvalidInput(
            f"invalid cron expression {expr!r}: a year field is Quartz syntax, which is not "
            "supported; use 5 fields, or 6 with seconds first"
        )
    if len(fields) not in (5, 6):
        raise InvalidInput(
            f"invalid cron expression {expr!r}: expected 5 fields, or 6 with seconds first; "
            f"got {len(fields)}"
        )
    names = _FIELD_NAMES[6 - len(fields) :]
    for name, field in zip(names, fields, strict=True):
        # Day names (WED) contain a W, which is not Quartz's nearest-weekday W.
        bare = _DAY_NAMES.sub("", field)
        for mark in ("?", "W"):
            if mark in bare:
                raise InvalidInput(
                    f"invalid cron expression {expr!r}: {mark!r} in the {name} field is "
                    "Quartz syntax, which is not supported"
                )
        for item in field.split(","):
            step = item.partition("/")[2]
            if step.isdigit() and int(step) > _FIELD_MAX[name]:
                raise InvalidInput(
                    f"invalid cron expression {expr!r}: step {step} in the {name} field is "
                    f"beyond its range (at most {_FIELD_MAX[name]})"
                )
    return fields


def _parse_cron(expr: str, fields: list[str]) -> CronSim | None:
    """Parse with cronsim; None when every field is valid but no date can match."""
    from cronsim import CronSim, CronSimError

    six = fields if len(fields) == 6 else ["0", *fields]
    try:
        return CronSim(" ".join(six), _PARSE_START)
    except CronSimError:
        bad = _first_bad_field(six)
    if bad is None:
        # cronsim refuses a day-of-month no listed month has ('0 0 30 2 *'): it never fires.
        return None
    raise InvalidInput(f"invalid cron expression {expr!r}: bad {bad} field")


def _first_bad_field(six: list[str]) -> str | None:
    """Name the first field cronsim refuses on its own, the others being '*'."""
    from cronsim import CronSim, CronSimError

    for index, name in enumerate(_FIELD_NAMES):
        alone = ["*"] * 6
        alone[index] = six[index]
        try:
            CronSim(" ".join(alone), _PARSE_START)
        except CronSimError:
            return name
    return None


# ---------------------------------------------------------------- every


class EverySchedule:
    """Slots at anchor + offset + k*every; the anchor is 1970-01-01 00:00 at standard time."""

    def __init__(self, every: timedelta, offset: timedelta, zone: ZoneInfo) -> None:
        _check_every(every, offset)
        self.every = every
        self.offset = offset
        self.zone = zone
        self._every_us = every // _MICROSECOND
        self._offset_us = offset // _MICROSECOND

    def __repr__(self) -> str:
        return f"EverySchedule({format_every(self.every, self.offset)!r}, {self.zone.key!r})"

    def next_after(self, after: datetime) -> datetime | None:
        limit = _instant(after)
        standard = _standard_offset(self.zone, limit.astimezone(self.zone).year)
        # Local midnight at standard offset is that many microseconds before UTC midnight.
        base_us = self._offset_us - standard // _MICROSECOND
        after_us = (limit - _EPOCH) // _MICROSECOND
        slot = (after_us - base_us) // self._every_us + 1
        fire = _EPOCH + timedelta(microseconds=base_us + slot * self._every_us)
        return fire.astimezone(self.zone)


@lru_cache(maxsize=1024)
def _standard_offset(zone: ZoneInfo, year: int) -> timedelta:
    """The smaller of the zone's UTC offsets in `year` (weekly samples catch every DST period)."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    samples = [start + timedelta(days=7 * week) for week in range(53)]
    samples.append(datetime(year, 12, 31, 23, 59, tzinfo=UTC))
    offsets = [sample.astimezone(zone).utcoffset() for sample in samples]
    return min(offset for offset in offsets if offset is not None)


def _check_every(every: timedelta, offset: timedelta) -> None:
    if every < timedelta(seconds=1):
        raise InvalidInput(f"invalid interval {format_duration(every)!r}: must be at least 1s")
    if offset < timedelta(0) or offset >= every:
        raise InvalidInput(
            f"invalid offset {format_duration(offset)!r} for every {format_duration(every)}: "
            "the offset must be at least 0s and shorter than the interval"
        )


def parse_every(text: str) -> tuple[timedelta, timedelta]:
    """`15m` or `15m+5m` (the offset may be in ms: `1s+250ms`) -> (every, offset)."""
    every_text, plus, offset_text = text.strip().partition("+")
    if plus and not offset_text.strip():
        raise InvalidInput(f"invalid interval {text!r}: nothing after '+'; write it like 15m+5m")
    every = parse_duration(every_text, what="interval")
    offset = parse_duration(offset_text, what="offset", allow_ms=True) if plus else timedelta(0)
    _check_every(every, offset)
    return every, offset


def format_every(every: timedelta, offset: timedelta) -> str:
    """`15m`, or `15m+5m` with an offset, in canonical duration text."""
    text = format_duration(every)
    return f"{text}+{format_duration(offset)}" if offset else text


# ---------------------------------------------------------------- once


class OnceSchedule:
    """Fires once, at `at`."""

    def __init__(self, at: datetime) -> None:
        _instant(at)  # refuses a naive datetime
        self.at = at

    def __repr__(self) -> str:
        return f"OnceSchedule({self.at.isoformat()!r})"

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if _instant(self.at) > _instant(after) else None


# ---------------------------------------------------------------- helpers


@lru_cache(maxsize=4096)
def build_schedule(trigger: str, schedule: str | None, zone_name: str) -> Schedule | None:
    """The schedule of a stored job; None for a manual-only job.

    Cached: schedules are immutable, and the daemon asks for the same ones every second.
    """
    if trigger == "manual":
        return None
    if trigger not in TRIGGERS:
        raise InvalidInput(f"unknown trigger {trigger!r}: use one of {', '.join(TRIGGERS)}")
    if not schedule:
        raise InvalidInput(f"a {trigger} trigger needs a schedule")
    zone = get_zone(zone_name)
    if trigger == "cron":
        return CronSchedule(schedule, zone)
    if trigger == "every":
        every, offset = parse_every(schedule)
        return EverySchedule(every, offset, zone)
    return OnceSchedule(parse_time(schedule, zone).astimezone(zone))


def fire_times(timetable: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next `count` fires strictly after `after` (fewer if the timetable ends)."""
    fires: list[datetime] = []
    moment: datetime | None = after
    while len(fires) < count and moment is not None:
        moment = timetable.next_after(moment)
        if moment is not None:
            fires.append(moment)
    return fires


def validate_fires(timetable: Schedule, now: datetime) -> datetime:
    """The next fire after `now`; InvalidInput when there is none, so no dead job is saved."""
    fire = timetable.next_after(now)
    if fire is None:
        raise InvalidInput(_never_fires_message(timetable, now))
    return fire


def _never_fires_message(timetable: Schedule, now: datetime) -> str:
    if isinstance(timetable, CronSchedule):
        return f"cron expression {timetable.expr!r} never fires: no date matches it"
    if isinstance(timetable, OnceSchedule):
        return (
            f"time {_once_text(timetable.at)} never fires: it is not after now "
            f"({_once_text(now.astimezone(timetable.at.tzinfo))})"
        )
    return f"schedule {timetable!r} never fires"


def describe(trigger: str, schedule: str | None) -> str:
    """Short text for tables: `cron 0 9 * * 1-5`, `every 15m+5m`, `once 2026-12-01 09:00 +01:00`."""
    if trigger == "manual" or not schedule:
        return trigger
    if trigger == "once":
        try:
            return f"once {_once_text(datetime.fromisoformat(schedule))}"
        except ValueError:  # a table must still render an odd stored value
            return f"once {schedule}"
    return f"{trigger} {schedule}"


def _once_text(at: datetime) -> str:
    """`2026-12-01 09:00 +01:00`, with seconds only when they are not zero."""
    text = at.strftime("%Y-%m-%d %H:%M:%S" if at.second else "%Y-%m-%d %H:%M")
    offset = at.utcoffset()
    if offset is None:
        return text
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // _MINUTE
    return f"{text} {sign}{minutes // 60:02d}:{minutes % 60:02d}"
