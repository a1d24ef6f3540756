"""Aware datetimes, durations and time zones: parsing, storage text and display."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_MAX_DURATION_MS = 100 * 365 * 86_400_000


def utcnow() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=8192)
def to_db(dt: datetime) -> str:
    """UTC text that sorts: fixed width, microseconds always present.

    Cached and hand-formatted: the daemon writes the same few instants for a whole burst.
    """
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    u = dt.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:"
        f"{u.second:02d}.{u.microsecond:06d}Z"
    )


def from_db(text: str) -> datetime:
    # fromisoformat (C) reads to_db's text ~40x faster than strptime: apply loads every job.
    return datetime.fromisoformat(text).astimezone(UTC)


def iso_z(dt: datetime | None) -> str | None:
    """ISO-8601 UTC ending in Z for JSON output; milliseconds only when not zero."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    text = dt.isoformat(timespec="seconds")[:19]  # strftime's text, twice as fast
    if dt.microsecond:
        text += f".{dt.microsecond // 1000:03d}"
    return text + "Z"


def db_to_iso(text: str | None) -> str | None:
    return iso_z(from_db(text)) if text else None


def parse_duration(text: str, *, what: str = "duration", allow_ms: bool = False) -> timedelta:
    """Parse `30s`, `15m`, `1h30m`, `250ms` (the last only where allow_ms)."""
    cleaned = text.strip().lower()
    pos = 0
    total_ms = 0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != pos:
            break
        unit = match.group(2)
        if unit == "ms" and not allow_ms:
            raise InvalidInput(f"invalid {what} {text!r}: milliseconds are not allowed here")
        total_ms += int(match.group(1)) * _UNITS_MS[unit]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise InvalidInput(
            f"invalid {what} {text!r}: use a number with a unit, like 30s, 15m, 2h, 1d or 1h30m"
        )
    if total_ms > _MAX_DURATION_MS:
        raise InvalidInput(f"invalid {what} {text!r}: at most 100 years")
    return timedelta(milliseconds=total_ms)


def format_duration(value: timedelta | float) -> str:
    """The shortest exact text: 90s prints as 1m30s, 0.25s as 250ms."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    remaining = round(seconds * 1000)
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS_MS[unit]
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@lru_cache(maxsize=256)
def get_zone(name: str) -> ZoneInfo:
    # zoneinfo (with sysconfig) is imported on the first zone: `list` shows none.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name like Europe/Berlin or UTC"
        ) from None


def local_zone_name() -> str:
    """The machine's IANA zone name (TZ, /etc/localtime, ...), UTC if it cannot be told."""
    import tzlocal

    try:
        name = tzlocal.get_localzone_name()
    except Exception:  # tzlocal raises several kinds on odd systems; UTC is a safe answer
        return "UTC"
    return name or "UTC"


def is_nonexistent(local: datetime) -> bool:
    """True for a wall-clock time skipped by a spring-forward change."""
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) != local.replace(
        tzinfo=None
    )


_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")


TIME_FORMS = (
    "use YYYY-MM-DD HH:MM[:SS] (in the job's zone) "
    "or ISO-8601 with an offset, like 2026-12-01T09:00:00+01:00"
)


def parse_time(
    text: str, zone: ZoneInfo, *, what: str = "time", forms: str = TIME_FORMS
) -> datetime:
    """ISO-8601 with an offset, or local `YYYY-MM-DD HH:MM[:SS]` read in `zone`.

    `forms` is the hint for an unreadable time, naming the zone as the command reads it.
    """
    raw = text.strip()
    candidate = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return parsed
    local = None
    for fmt in _LOCAL_FORMATS:
        try:
            local = datetime.strptime(raw, fmt).replace(tzinfo=zone)
            break
        except ValueError:
            continue
    if local is None:
        raise InvalidInput(f"invalid {what} {text!r}: {forms}")
    if is_nonexistent(local):
        raise InvalidInput(
            f"invalid {what} {text!r}: that local time does not exist in {zone.key} "
            "(skipped by a daylight-saving change)"
        )
    return local


def humanize_delta(moment: datetime, now: datetime) -> str:
    """`in 4m`, `3h ago`, `now`: for tables only, never for JSON."""
    seconds = (moment - now).total_seconds()
    future = seconds > 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size:
            count = int(seconds // size)
            text = f"{count}{unit}"
            break
    return f"in {text}" if future else f"{text} ago"


def local_text(moment: datetime, zone: ZoneInfo | None = None) -> str:
    """A fire time for people: in `zone` (default: the machine's), with the offset."""
    shown = moment.astimezone(zone) if zone else moment.astimezone()
    return shown.strftime("%Y-%m-%d %H:%M:%S %z")
