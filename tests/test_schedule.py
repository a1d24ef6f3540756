"""Fire times: cron against Debian's recorded behaviour and hand-derived DST tables,
six-field cron, aligned intervals, one-shots, and the small helpers around them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from jobctl.errors import InvalidInput
from jobctl.schedule import (
    PRESETS,
    CronSchedule,
    EverySchedule,
    OnceSchedule,
    Schedule,
    build_schedule,
    describe,
    fire_times,
    format_every,
    parse_every,
    validate_fires,
)
from jobctl.timeutil import get_zone

REPO = Path(__file__).resolve().parents[1]
# Fire times recorded from Debian's real cron daemon (cron 3.0pl1-162) around the 2026 DST
# changes, copied from the product brief's shared/cron-dst-debian.json so the suite stands alone.
DEBIAN_VECTORS = REPO / "tests" / "fixtures" / "cron-dst-debian.json"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def fires_between(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Every fire strictly after `after` and before `until`, comparing UTC instants."""
    fires = []
    moment = schedule.next_after(after)
    while moment is not None and moment.astimezone(UTC) < until.astimezone(UTC):
        fires.append(moment)
        moment = schedule.next_after(moment)
    return fires


def assert_fires(got: list[datetime], expected: list[str]) -> None:
    """Same instants, and the same wall time and UTC offset as written."""
    assert [g.astimezone(UTC) for g in got] == [at(e).astimezone(UTC) for e in expected]
    assert [g.isoformat() for g in got] == expected


# ---------------------------------------------------------------- Debian's recorded fires


def _debian_cases() -> list[dict[str, Any]]:
    # A missing file must fail the run, not skip it: these vectors are the reference.
    assert DEBIAN_VECTORS.is_file(), f"Debian cron test vectors missing: {DEBIAN_VECTORS}"
    cases: list[dict[str, Any]] = json.loads(DEBIAN_VECTORS.read_text())["cases"]
    return cases


DEBIAN_CASES = _debian_cases()


def test_all_debian_vectors_are_present() -> None:
    assert len(DEBIAN_CASES) == 28


@pytest.mark.parametrize(
    "case",
    DEBIAN_CASES,
    ids=[f"{c['zone']}-{c['after'][:10]}-{c['cron']}" for c in DEBIAN_CASES],
)
def test_cron_matches_debian_cron(case: dict[str, Any]) -> None:
    schedule = CronSchedule(case["cron"], get_zone(case["zone"]))
    got = fires_between(schedule, at(case["after"]), at(case["until"]))
    assert_fires(got, case["fires"])


# ---------------------------------------------------------------- southern hemisphere, by hand

# Derived from the Debian rules: a fixed-time job (neither minute nor hour starts with '*')
# whose time is skipped fires once at the first instant after the change, and fires once,
# in the first pass, on a fall-back night; any other job follows the wall clock.
# Sydney 2026: DST ends Sun 5 Apr 03:00 +11 -> 02:00 +10; starts Sun 4 Oct 02:00 +10 -> 03:00 +11.
SYD_BACK = ("Australia/Sydney", "2026-04-05T01:40:00+11:00", "2026-04-05T03:16:00+10:00")
SYD_FWD = ("Australia/Sydney", "2026-10-04T01:40:00+10:00", "2026-10-04T04:16:00+11:00")
# Santiago 2026: DST ends Sun 5 Apr 00:00 -03 -> Sat 23:00 -04; starts Sun 6 Sep 00:00 -04
# -> 01:00 -03 (midnight itself is skipped).
SCL_BACK = ("America/Santiago", "2026-04-04T22:40:00-03:00", "2026-04-05T00:16:00-04:00")
SCL_FWD = ("America/Santiago", "2026-09-05T22:40:00-04:00", "2026-09-06T02:16:00-03:00")

SOUTHERN_CASES = [
    (*SYD_BACK, "30 2 * * *", ["2026-04-05T02:30:00+11:00"]),
    (*SYD_BACK, "0 2 * * *", ["2026-04-05T02:00:00+11:00"]),
    (*SYD_BACK, "30 1 * * *", []),
    (*SYD_BACK, "0 3 * * *", ["2026-04-05T03:00:00+10:00"]),
    (
        *SYD_BACK,
        "*/15 * * * *",
        [
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T02:00:00+11:00",
            "2026-04-05T02:15:00+11:00",
            "2026-04-05T02:30:00+11:00",
            "2026-04-05T02:45:00+11:00",
            "2026-04-05T02:00:00+10:00",
            "2026-04-05T02:15:00+10:00",
            "2026-04-05T02:30:00+10:00",
            "2026-04-05T02:45:00+10:00",
            "2026-04-05T03:00:00+10:00",
            "2026-04-05T03:15:00+10:00",
        ],
    ),
    (
        *SYD_BACK,
        "*/30 2 * * *",
        [
            "2026-04-05T02:00:00+11:00",
            "2026-04-05T02:30:00+11:00",
            "2026-04-05T02:00:00+10:00",
            "2026-04-05T02:30:00+10:00",
        ],
    ),
    (
        *SYD_BACK,
        "0 * * * *",
        ["2026-04-05T02:00:00+11:00", "2026-04-05T02:00:00+10:00", "2026-04-05T03:00:00+10:00"],
    ),
    (*SYD_BACK, "0 */2 * * *", ["2026-04-05T02:00:00+11:00", "2026-04-05T02:00:00+10:00"]),
    (*SYD_FWD, "30 2 * * *", ["2026-10-04T03:00:00+11:00"]),
    (*SYD_FWD, "0 2 * * *", ["2026-10-04T03:00:00+11:00"]),
    (*SYD_FWD, "15,45 2 * * *", ["2026-10-04T03:00:00+11:00"]),
    (*SYD_FWD, "0 3 * * *", ["2026-10-04T03:00:00+11:00"]),
    (*SYD_FWD, "30 1 * * *", []),
    (
        *SYD_FWD,
        "*/15 * * * *",
        [
            "2026-10-04T01:45:00+10:00",
            "2026-10-04T03:00:00+11:00",
            "2026-10-04T03:15:00+11:00",
            "2026-10-04T03:30:00+11:00",
            "2026-10-04T03:45:00+11:00",
            "2026-10-04T04:00:00+11:00",
            "2026-10-04T04:15:00+11:00",
        ],
    ),
    (*SYD_FWD, "*/30 2 * * *", []),
    (*SYD_FWD, "0 * * * *", ["2026-10-04T03:00:00+11:00", "2026-10-04T04:00:00+11:00"]),
    (*SYD_FWD, "0 */2 * * *", ["2026-10-04T04:00:00+11:00"]),
    (*SCL_BACK, "30 23 * * *", ["2026-04-04T23:30:00-03:00"]),
    (*SCL_BACK, "0 0 * * *", ["2026-04-05T00:00:00-04:00"]),
    (
        *SCL_BACK,
        "*/30 23 * * *",
        [
            "2026-04-04T23:00:00-03:00",
            "2026-04-04T23:30:00-03:00",
            "2026-04-04T23:00:00-04:00",
            "2026-04-04T23:30:00-04:00",
        ],
    ),
    (
        *SCL_BACK,
        "0 * * * *",
        ["2026-04-04T23:00:00-03:00", "2026-04-04T23:00:00-04:00", "2026-04-05T00:00:00-04:00"],
    ),
    (*SCL_FWD, "0 0 * * *", ["2026-09-06T01:00:00-03:00"]),
    (*SCL_FWD, "30 0 * * *", ["2026-09-06T01:00:00-03:00"]),
    (*SCL_FWD, "30 1 * * *", ["2026-09-06T01:30:00-03:00"]),
    (*SCL_FWD, "*/30 0 * * *", []),
    (
        *SCL_FWD,
        "*/30 * * * *",
        [
            "2026-09-05T23:00:00-04:00",
            "2026-09-05T23:30:00-04:00",
            "2026-09-06T01:00:00-03:00",
            "2026-09-06T01:30:00-03:00",
            "2026-09-06T02:00:00-03:00",
        ],
    ),
    (*SCL_FWD, "0 */2 * * *", ["2026-09-06T02:00:00-03:00"]),
]


@pytest.mark.parametrize(("zone", "after", "until", "expr", "expected"), SOUTHERN_CASES)
def test_cron_southern_hemisphere_dst(
    zone: str, after: str, until: str, expr: str, expected: list[str]
) -> None:
    got = fires_between(CronSchedule(expr, get_zone(zone)), at(after), at(until))
    assert_fires(got, expected)


@pytest.mark.parametrize(
    ("zone", "expr", "after", "expected"),
    [
        # The day after a skipped fixed time, it fires at its own time again.
        (
            "Australia/Sydney",
            "30 2 * * *",
            "2026-10-04T03:00:00+11:00",
            "2026-10-05T02:30:00+11:00",
        ),
        # The day after a repeated fixed time, too (standard time now).
        (
            "Australia/Sydney",
            "30 2 * * *",
            "2026-04-05T02:30:00+11:00",
            "2026-04-06T02:30:00+10:00",
        ),
        ("America/Santiago", "0 0 * * *", "2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"),
    ],
)
def test_cron_day_after_dst_change(zone: str, expr: str, after: str, expected: str) -> None:
    assert_fires([fire_times(CronSchedule(expr, get_zone(zone)), at(after), 1)[0]], [expected])


# ---------------------------------------------------------------- strictly after, in UTC


@pytest.mark.parametrize(
    ("zone", "expr", "after", "expected"),
    [
        # Second pass of New York's repeated hour, before and after 01:30 on the wall clock:
        # 01:30 EDT already fired, so the next fire is tomorrow, never earlier than `after`.
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T01:10:00-05:00",
            "2026-11-02T01:30:00-05:00",
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T01:30:00-05:00",
            "2026-11-02T01:30:00-05:00",
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T01:40:00-05:00",
            "2026-11-02T01:30:00-05:00",
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T05:30:00+00:00",
            "2026-11-02T01:30:00-05:00",
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T01:29:59-04:00",
            "2026-11-01T01:30:00-04:00",
        ),
        ("Europe/Berlin", "30 2 * * *", "2026-10-25T02:10:00+01:00", "2026-10-26T02:30:00+01:00"),
        (
            "Australia/Sydney",
            "30 2 * * *",
            "2026-04-05T02:10:00+10:00",
            "2026-04-06T02:30:00+10:00",
        ),
        # Six fields: seconds left in the first-pass minute are not replayed in the second.
        (
            "America/New_York",
            "*/20 30 1 * * *",
            "2026-11-01T01:30:10-05:00",
            "2026-11-02T01:30:00-05:00",
        ),
        # Wall-clock jobs do fire again in the second pass.
        (
            "America/New_York",
            "30 * * * *",
            "2026-11-01T01:10:00-05:00",
            "2026-11-01T01:30:00-05:00",
        ),
    ],
)
def test_next_after_is_strictly_after_in_utc(
    zone: str, expr: str, after: str, expected: str
) -> None:
    fire = CronSchedule(expr, get_zone(zone)).next_after(at(after))
    assert fire is not None
    assert fire.astimezone(UTC) > at(after).astimezone(UTC)
    assert_fires([fire], [expected])


YEAR_LOOPS = [
    ("America/New_York", "30 1 * * *", 365),
    ("America/New_York", "30 2 * * *", 365),
    ("Europe/Berlin", "30 2 * * *", 365),
    ("Australia/Sydney", "30 2 * * *", 365),
    ("America/Santiago", "0 0 * * *", 365),
    ("America/Santiago", "30 23 * * *", 365),
    ("America/New_York", "0 9 * * 1-5", 261),
]


@pytest.mark.parametrize(("zone", "expr", "count"), YEAR_LOOPS)
def test_a_year_of_fires_strictly_increases(zone: str, expr: str, count: int) -> None:
    tz = get_zone(zone)
    start = datetime(2025, 12, 31, 23, 59, 59, tzinfo=tz)
    fires = fires_between(CronSchedule(expr, tz), start, datetime(2027, 1, 1, tzinfo=tz))
    instants = [f.astimezone(UTC) for f in fires]
    assert all(a < b for a, b in pairwise(instants))
    assert len(fires) == count
    # A fixed-time daily job fires once on each of its local days, DST or not.
    assert len({f.date() for f in fires}) == count


@pytest.mark.parametrize(
    ("zone", "first", "last", "hours"),
    [
        # Around each change, hourly fires track the wall clock: one per real hour.
        ("America/New_York", "2026-03-07T00:00:00-05:00", "2026-03-10T00:00:00-04:00", 71),
        ("America/New_York", "2026-10-31T00:00:00-04:00", "2026-11-03T00:00:00-05:00", 73),
        ("Australia/Sydney", "2026-04-04T00:00:00+11:00", "2026-04-07T00:00:00+10:00", 73),
        ("Australia/Sydney", "2026-10-03T00:00:00+10:00", "2026-10-06T00:00:00+11:00", 71),
    ],
)
def test_hourly_around_dst_changes(zone: str, first: str, last: str, hours: int) -> None:
    fires = fires_between(CronSchedule("0 * * * *", get_zone(zone)), at(first), at(last))
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in pairwise(fires)}
    assert gaps == {timedelta(hours=1)}
    assert len(fires) == hours - 1


# ---------------------------------------------------------------- presets, six fields, days

UTC_ZONE = get_zone("UTC")
START = "2026-01-01T00:00:00+00:00"  # a Thursday


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("@hourly", ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]),
        ("@daily", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@midnight", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@weekly", ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]),
        ("@monthly", ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]),
        ("@yearly", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@annually", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@DAILY", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        (" @daily ", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
    ],
)
def test_presets(expr: str, expected: list[str]) -> None:
    assert_fires(fire_times(CronSchedule(expr, UTC_ZONE), at(START), 2), expected)


def test_preset_table() -> None:
    assert PRESETS == {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
    }


@pytest.mark.parametrize(
    ("zone", "expr", "after", "expected"),
    [
        (
            "UTC",
            "*/10 * * * * *",
            "2026-01-01T12:00:05+00:00",
            ["2026-01-01T12:00:10+00:00", "2026-01-01T12:00:20+00:00", "2026-01-01T12:00:30+00:00"],
        ),
        (
            "UTC",
            "*/10 * * * * *",
            "2026-01-01T12:00:50.500000+00:00",
            ["2026-01-01T12:01:00+00:00", "2026-01-01T12:01:10+00:00"],
        ),
        (
            "UTC",
            "30 0 9 * * *",
            START,
            ["2026-01-01T09:00:30+00:00", "2026-01-02T09:00:30+00:00"],
        ),
        (
            "UTC",
            "0,45 * * * * *",
            "2026-01-01T12:00:00+00:00",
            ["2026-01-01T12:00:45+00:00", "2026-01-01T12:01:00+00:00", "2026-01-01T12:01:45+00:00"],
        ),
        (
            "UTC",
            "58-59 59 23 31 12 *",
            START,
            ["2026-12-31T23:59:58+00:00", "2026-12-31T23:59:59+00:00", "2027-12-31T23:59:58+00:00"],
        ),
        (
            "UTC",
            "5/20 0 0 * * 1",
            START,
            ["2026-01-05T00:00:05+00:00", "2026-01-05T00:00:25+00:00", "2026-01-05T00:00:45+00:00"],
        ),
        # Skipped fixed time: the fire minute moves to 03:00 and keeps its seconds.
        (
            "America/New_York",
            "*/20 30 2 * * *",
            "2026-03-08T01:40:00-05:00",
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:00:20-04:00",
                "2026-03-08T03:00:40-04:00",
                "2026-03-09T02:30:00-04:00",
            ],
        ),
        # Repeated fixed time: first pass only.
        (
            "America/New_York",
            "*/30 30 1 * * *",
            "2026-11-01T00:40:00-04:00",
            ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:30-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        # Wall-clock minutes: both passes.
        (
            "America/New_York",
            "0 */30 1 * * *",
            "2026-11-01T00:40:00-04:00",
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-02T01:00:00-05:00",
            ],
        ),
        (
            "America/New_York",
            "0 */30 2 * * *",
            "2026-03-08T01:40:00-05:00",
            ["2026-03-09T02:00:00-04:00"],
        ),
    ],
)
def test_six_fields(zone: str, expr: str, after: str, expected: list[str]) -> None:
    got = fire_times(CronSchedule(expr, get_zone(zone)), at(after), len(expected))
    assert_fires(got, expected)


def _dates(schedule: CronSchedule, count: int) -> list[str]:
    return [f.date().isoformat() for f in fire_times(schedule, at(START), count)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # A field starting with '*' makes it AND: odd days that are Mondays.
        ("0 0 */2 * 1", ["2026-01-05", "2026-01-19", "2026-02-09", "2026-02-23"]),
        ("0 0 * * 1", ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]),
        # Both restricted makes it OR: the 1st and 15th, and every Monday.
        ("0 0 1,15 * 1", ["2026-01-05", "2026-01-12", "2026-01-15", "2026-01-19"]),
        ("0 0 * * 0", ["2026-01-04", "2026-01-11", "2026-01-18", "2026-01-25"]),
        ("0 0 * * 7", ["2026-01-04", "2026-01-11", "2026-01-18", "2026-01-25"]),
        ("0 0 * * SUN", ["2026-01-04", "2026-01-11", "2026-01-18", "2026-01-25"]),
        ("0 0 * * mon-wed", ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-12"]),
        ("0 0 * jan,mar wed", ["2026-01-07", "2026-01-14", "2026-01-21", "2026-01-28"]),
        ("0 0 L * *", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
        ("0 0 * * 5L", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
        ("0 0 * * 1#2", ["2026-01-12", "2026-02-09", "2026-03-09", "2026-04-13"]),
        ("0 0 29 2 *", ["2028-02-29", "2032-02-29", "2036-02-29", "2040-02-29"]),
    ],
)
def test_days(expr: str, expected: list[str]) -> None:
    assert _dates(CronSchedule(expr, UTC_ZONE), len(expected)) == expected


# ---------------------------------------------------------------- invalid cron


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "invalid cron expression '61 * * * *': bad minute field"),
        ("* 24 * * *", "bad hour field"),
        ("* * 0 * *", "bad day-of-month field"),
        ("* * 32 * *", "bad day-of-month field"),
        ("* * * 13 *", "bad month field"),
        ("* * * * 8", "bad day-of-week field"),
        ("* * * * MON#6", "bad day-of-week field"),
        ("* * * * L", "bad day-of-week field"),
        ("*/0 * * * *", "bad minute field"),
        ("5-1 * * * *", "bad minute field"),
        ("a b c d e", "bad minute field"),
        ("* 1-2-3 * * *", "bad hour field"),
        ("60 * * * * *", "bad second field"),
        ("x 0 * * * *", "bad second field"),
        ("0 60 * * * *", "bad minute field"),
        ("*/99999999999999999999 * * * *", "step 99999999999999999999 in the minute field"),
        ("*/60 * * * *", "step 60 in the minute field is beyond its range (at most 59)"),
        ("0 */24 * * *", "step 24 in the hour field is beyond its range (at most 23)"),
        ("0 0 1-5/32 * *", "step 32 in the day-of-month field"),
        ("0 0 * 1,*/13 *", "step 13 in the month field"),
        ("0 0 * * */8", "step 8 in the day-of-week field"),
        ("*/60 * * * * *", "step 60 in the second field"),
        ("* * * *", "expected 5 fields, or 6 with seconds first; got 4"),
        ("", "got 0"),
        ("0 0 12 * * MON 2026", "a year field is Quartz syntax"),
        ("* * * * * * * *", "got 8"),
        ("0 0 12 ? * MON", "'?' in the day-of-month field is Quartz syntax"),
        ("0 0 * * ?", "'?' in the day-of-week field is Quartz syntax"),
        ("0 0 15W * *", "'W' in the day-of-month field is Quartz syntax"),
        ("0 0 LW * *", "'W' in the day-of-month field is Quartz syntax"),
        ("@reboot", "@reboot is not supported"),
        ("@fortnightly", "unknown preset; use one of @hourly, @daily, @midnight"),
    ],
)
def test_invalid_cron(expr: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        CronSchedule(expr, UTC_ZONE)
    text = str(raised.value)
    assert message in text
    assert text.startswith(f"invalid cron expression {expr!r}: ")
    assert "\n" not in text


@pytest.mark.parametrize(
    "expr", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6 *", "0 0 0 30 2 *", "0 0 30-31 2 *"]
)
def test_cron_that_never_fires(expr: str) -> None:
    schedule = CronSchedule(expr, UTC_ZONE)
    assert schedule.next_after(at(START)) is None
    with pytest.raises(InvalidInput, match=re.escape(f"cron expression '{expr}' never fires")):
        validate_fires(schedule, at(START))


def test_validate_fires_returns_the_next_fire() -> None:
    fire = validate_fires(CronSchedule("0 9 * * *", UTC_ZONE), at(START))
    assert fire == at("2026-01-01T09:00:00+00:00")


# ---------------------------------------------------------------- every


@pytest.mark.parametrize(
    ("text", "zone", "after", "expected"),
    [
        (
            "15m+5m",
            "UTC",
            START,
            ["2026-01-01T00:05:00+00:00", "2026-01-01T00:20:00+00:00", "2026-01-01T00:35:00+00:00"],
        ),
        ("15m+5m", "UTC", "2026-01-01T00:05:00+00:00", ["2026-01-01T00:20:00+00:00"]),
        ("15m", "UTC", "2026-01-01T00:14:59.999000+00:00", ["2026-01-01T00:15:00+00:00"]),
        (
            "90s",
            "UTC",
            START,
            ["2026-01-01T00:01:30+00:00", "2026-01-01T00:03:00+00:00", "2026-01-01T00:04:30+00:00"],
        ),
        # 2026-01-01T00:00Z is 1767225600 s after the epoch, a multiple of 420.
        ("7m", "UTC", START, ["2026-01-01T00:07:00+00:00", "2026-01-01T00:14:00+00:00"]),
        (
            "1s+250ms",
            "UTC",
            START,
            ["2026-01-01T00:00:00.250000+00:00", "2026-01-01T00:00:01.250000+00:00"],
        ),
        ("1d+6h", "UTC", START, ["2026-01-01T06:00:00+00:00", "2026-01-02T06:00:00+00:00"]),
        # New York across both changes: the same minutes, exact spacing.
        (
            "15m+5m",
            "America/New_York",
            "2026-03-08T01:40:00-05:00",
            ["2026-03-08T01:50:00-05:00", "2026-03-08T03:05:00-04:00", "2026-03-08T03:20:00-04:00"],
        ),
        (
            "15m+5m",
            "America/New_York",
            "2026-11-01T01:40:00-04:00",
            [
                "2026-11-01T01:50:00-04:00",
                "2026-11-01T01:05:00-05:00",
                "2026-11-01T01:20:00-05:00",
            ],
        ),
        # Half- and quarter-hour zones: the anchor is local midnight, so still :05 local.
        (
            "15m+5m",
            "Asia/Kolkata",
            "2026-06-01T10:00:00+05:30",
            ["2026-06-01T10:05:00+05:30", "2026-06-01T10:20:00+05:30", "2026-06-01T10:35:00+05:30"],
        ),
        ("15m+5m", "Asia/Kathmandu", "2026-06-01T10:00:00+05:45", ["2026-06-01T10:05:00+05:45"]),
        ("1d", "Asia/Kolkata", "2026-06-01T10:00:00+05:30", ["2026-06-02T00:00:00+05:30"]),
        # Berlin, 1d: midnight standard time, which is 01:00 in summer, 24 h apart throughout.
        (
            "1d",
            "Europe/Berlin",
            "2026-03-28T12:00:00+01:00",
            ["2026-03-29T00:00:00+01:00", "2026-03-30T01:00:00+02:00", "2026-03-31T01:00:00+02:00"],
        ),
        (
            "1d",
            "Europe/Berlin",
            "2026-10-24T12:00:00+02:00",
            ["2026-10-25T01:00:00+02:00", "2026-10-26T00:00:00+01:00"],
        ),
        (
            "1h",
            "Europe/Berlin",
            "2026-10-25T01:30:00+02:00",
            ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"],
        ),
        (
            "2h+30m",
            "Europe/Berlin",
            "2026-07-01T12:00:00+02:00",
            ["2026-07-01T13:30:00+02:00", "2026-07-01T15:30:00+02:00"],
        ),
        # Southern hemisphere: January is summer, so standard time is July's +10:00.
        ("1d", "Australia/Sydney", "2026-01-10T12:00:00+11:00", ["2026-01-11T01:00:00+11:00"]),
        ("1d", "Australia/Sydney", "2026-07-10T12:00:00+10:00", ["2026-07-11T00:00:00+10:00"]),
        # An `after` in another zone is compared as an instant.
        ("15m+5m", "America/New_York", "2026-01-01T00:00:00+00:00", ["2025-12-31T19:05:00-05:00"]),
    ],
)
def test_every(text: str, zone: str, after: str, expected: list[str]) -> None:
    every, offset = parse_every(text)
    got = fire_times(EverySchedule(every, offset, get_zone(zone)), at(after), len(expected))
    assert_fires(got, expected)


def test_every_keeps_its_minutes_all_year() -> None:
    schedule = EverySchedule(
        timedelta(minutes=15), timedelta(minutes=5), get_zone("America/New_York")
    )
    moment: datetime | None = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(366):
        assert moment is not None
        moment = schedule.next_after(moment + timedelta(hours=23, minutes=57))
        assert moment is not None
        assert (moment.minute, moment.second) in {(5, 0), (20, 0), (35, 0), (50, 0)}


@pytest.mark.parametrize(
    ("every", "offset", "message"),
    [
        (
            timedelta(milliseconds=999),
            timedelta(0),
            "invalid interval '999ms': must be at least 1s",
        ),
        (timedelta(0), timedelta(0), "must be at least 1s"),
        (timedelta(minutes=15), timedelta(minutes=15), "shorter than the interval"),
        (timedelta(minutes=15), timedelta(minutes=20), "shorter than the interval"),
        (timedelta(minutes=15), timedelta(seconds=-1), "at least 0s"),
    ],
)
def test_every_refuses(every: timedelta, offset: timedelta, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        EverySchedule(every, offset, UTC_ZONE)


@pytest.mark.parametrize(
    ("text", "every", "offset", "canonical"),
    [
        ("15m", timedelta(minutes=15), timedelta(0), "15m"),
        ("15m+5m", timedelta(minutes=15), timedelta(minutes=5), "15m+5m"),
        ("90s", timedelta(seconds=90), timedelta(0), "1m30s"),
        ("1m30s", timedelta(seconds=90), timedelta(0), "1m30s"),
        ("1s+250ms", timedelta(seconds=1), timedelta(milliseconds=250), "1s+250ms"),
        ("1h30m+0s", timedelta(minutes=90), timedelta(0), "1h30m"),
        ("60m+90s", timedelta(hours=1), timedelta(seconds=90), "1h+1m30s"),
        ("1d+1h", timedelta(days=1), timedelta(hours=1), "1d+1h"),
        (" 15M + 5m ", timedelta(minutes=15), timedelta(minutes=5), "15m+5m"),
    ],
)
def test_parse_and_format_every(
    text: str, every: timedelta, offset: timedelta, canonical: str
) -> None:
    assert parse_every(text) == (every, offset)
    assert format_every(every, offset) == canonical
    assert parse_every(canonical) == (every, offset)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid interval ''"),
        ("15", "invalid interval '15'"),
        ("abc", "invalid interval 'abc'"),
        ("500ms", "milliseconds are not allowed"),
        ("0s", "must be at least 1s"),
        ("15m+", "nothing after '+'"),
        ("+5m", "invalid interval ''"),
        ("15m+5m+1m", "invalid offset '5m+1m'"),
        ("15m+15m", "shorter than the interval"),
        ("15m+20m", "shorter than the interval"),
        ("1s+1s", "shorter than the interval"),
    ],
)
def test_parse_every_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_every(text)


# ---------------------------------------------------------------- once, build, describe

NEW_YORK = get_zone("America/New_York")


@pytest.mark.parametrize(
    ("when", "after", "expected"),
    [
        ("2026-12-01T09:00:00+01:00", "2026-12-01T07:59:59+00:00", "2026-12-01T09:00:00+01:00"),
        ("2026-12-01T09:00:00+01:00", "2026-12-01T08:00:00+00:00", None),
        ("2026-12-01T09:00:00+01:00", "2026-12-02T00:00:00+00:00", None),
    ],
)
def test_once(when: str, after: str, expected: str | None) -> None:
    fire = OnceSchedule(at(when)).next_after(at(after))
    assert (fire.isoformat() if fire else None) == expected


def test_once_compares_instants_across_a_repeated_hour() -> None:
    # Same ZoneInfo: by wall clock 01:30 (second pass) looks earlier than 01:40 (first pass).
    second_pass = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=1)
    first_pass = datetime(2026, 11, 1, 1, 40, tzinfo=NEW_YORK, fold=0)
    assert OnceSchedule(second_pass).next_after(first_pass) is second_pass
    assert OnceSchedule(first_pass).next_after(second_pass) is None


def test_once_in_the_past_never_fires() -> None:
    schedule = OnceSchedule(at("2026-01-01T09:00:00+01:00"))
    with pytest.raises(InvalidInput, match="time 2026-01-01 09:00 \\+01:00 never fires"):
        validate_fires(schedule, at("2026-06-01T00:00:00+00:00"))
    assert fire_times(schedule, at("2025-01-01T00:00:00+00:00"), 5) == [schedule.at]


@pytest.mark.parametrize(
    ("trigger", "text", "zone", "expected"),
    [
        ("cron", "0 9 * * 1-5", "Europe/Berlin", "2026-01-01T09:00:00+01:00"),
        ("cron", "@daily", "Europe/Berlin", "2026-01-02T00:00:00+01:00"),
        ("every", "15m+5m", "Europe/Berlin", "2026-01-01T01:05:00+01:00"),
        ("once", "2026-12-01T09:00:00+01:00", "America/New_York", "2026-12-01T03:00:00-05:00"),
        ("once", "2026-12-01T08:00:00Z", "UTC", "2026-12-01T08:00:00+00:00"),
    ],
)
def test_build_schedule(trigger: str, text: str, zone: str, expected: str) -> None:
    schedule = build_schedule(trigger, text, zone)
    assert schedule is not None
    fire = schedule.next_after(at(START))
    assert fire is not None
    assert fire.isoformat() == expected


def test_build_manual_schedule_is_none() -> None:
    assert build_schedule("manual", None, "UTC") is None


@pytest.mark.parametrize(
    ("trigger", "text", "zone", "message"),
    [
        ("hourly", "x", "UTC", "unknown trigger 'hourly'"),
        ("cron", None, "UTC", "a cron trigger needs a schedule"),
        ("cron", "0 9 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("cron", "0 9 * * * * *", "UTC", "Quartz"),
        ("every", "15m+20m", "UTC", "shorter than the interval"),
        ("once", "tomorrow", "UTC", "invalid time 'tomorrow'"),
    ],
)
def test_build_schedule_refuses(trigger: str, text: str | None, zone: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build_schedule(trigger, text, zone)


@pytest.mark.parametrize(
    ("trigger", "text", "expected"),
    [
        ("cron", "0 9 * * 1-5", "cron 0 9 * * 1-5"),
        ("cron", "@daily", "cron @daily"),
        ("every", "15m+5m", "every 15m+5m"),
        ("every", "1m30s", "every 1m30s"),
        ("once", "2026-12-01T09:00:00+01:00", "once 2026-12-01 09:00 +01:00"),
        ("once", "2026-12-01T09:00:30-03:30", "once 2026-12-01 09:00:30 -03:30"),
        ("once", "2026-12-01T09:00:00+00:00", "once 2026-12-01 09:00 +00:00"),
        ("once", "garbage", "once garbage"),
        ("manual", None, "manual"),
    ],
)
def test_describe(trigger: str, text: str | None, expected: str) -> None:
    assert describe(trigger, text) == expected


def test_fire_times_counts() -> None:
    schedule = CronSchedule("0 * * * *", UTC_ZONE)
    assert fire_times(schedule, at(START), 0) == []
    assert len(fire_times(schedule, at(START), 3)) == 3


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CronSchedule("0 * * * *", UTC_ZONE).next_after(datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        OnceSchedule(datetime(2026, 1, 1))  # noqa: DTZ001


def test_importing_schedule_does_not_import_cronsim() -> None:
    code = "import sys, jobctl.schedule; assert 'cronsim' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
