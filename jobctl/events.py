"""The event stream as `jobctl events` reads it: the newest events, those after an id, and
following new ones as they are committed; each as a JSON object or a line for people.

The store writes events in the transactions that make the changes they tell of; this module
only reads them. Ids increase in commit order (SQLite has one writer at a time), so a
reader that remembers the last id it printed misses nothing and repeats nothing when it
asks again with `--since-id`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jobctl.errors import InvalidInput
from jobctl.models import Event, EventType
from jobctl.store import Store
from jobctl.timeutil import format_duration, iso_z

DEFAULT_LIMIT = 20  # events shown without --since-id and without --follow
PAGE = 1000  # events read at once
FOLLOW_POLL = 0.2  # seconds between looks at the database while following
TYPES = {kind.value: kind for kind in EventType}


@dataclass
class EventFilter:
    """Which events to read: of these types (all when empty), of this job (any when None)."""

    types: Collection[EventType] = ()
    job: str | None = None
    since_id: int | None = None
    limit: int | None = None  # None: DEFAULT_LIMIT, or all after --since-id; 0: all
    follow: bool = False


def parse_types(words: Collection[str]) -> list[EventType]:
    """The event types named, or InvalidInput (exit 2) listing the known ones."""
    types = []
    for word in words:
        if word not in TYPES:
            raise InvalidInput(f"unknown event type {word!r}: one of {', '.join(TYPES)}")
        types.append(TYPES[word])
    return types


def past_events(store: Store, where: EventFilter) -> list[Event]:
    """What to print before following (or alone): the events after `since_id` (all, or the
    first `limit`), else the newest `limit` (DEFAULT_LIMIT) — none when following from now."""
    limit = where.limit
    if where.since_id is not None:
        events: list[Event] = []
        after = where.since_id
        while limit is None or limit == 0 or len(events) < limit:
            want = PAGE if not limit else min(PAGE, limit - len(events))
            page = store.select_events(after_id=after, types=where.types, job=where.job, limit=want)
            events += page
            if len(page) < want:
                break
            after = page[-1].id
        return events
    if where.follow:
        return []
    return store.select_events(
        types=where.types,
        job=where.job,
        limit=DEFAULT_LIMIT if limit is None else (limit or -1),
        newest=True,
    )


def follow_events(
    store: Store,
    where: EventFilter,
    after_id: int,
    *,
    poll: float = FOLLOW_POLL,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Event]:
    """Events committed after `after_id`, as they come, forever (the caller stops it).

    Each look reads the newest id first and then the events up to it: every lower id is
    committed (or rolled back) by then, so a page ending there leaves no gap, even when a
    filter skips most events.
    """
    seen_version = None
    while True:
        version = store.data_version()
        if version != seen_version:
            seen_version = version
            newest = store.last_event_id()
            while after_id < newest:
                page = store.select_events(
                    after_id=after_id,
                    up_to_id=newest,
                    types=where.types,
                    job=where.job,
                    limit=PAGE,
                )
                yield from page
                after_id = page[-1].id if len(page) == PAGE else newest
        sleep(poll)


def event_to_dict(event: Event) -> dict[str, object]:
    """The event as `--json` prints it: id, at, type, job and run, then its data."""
    common = {
        "id": event.id,
        "at": iso_z(event.at),
        "type": event.type.value,
        "job": event.job,
        "run": event.run,
    }
    return common | {key: value for key, value in event.data.items() if key not in common}


def summary(event: Event) -> str:
    """A few words on what happened, for the line people read."""
    data = event.data
    describe = _SUMMARIES.get(event.type)
    return describe(data) if describe else ""


def _started(data: dict[str, Any]) -> str:
    attempt = data.get("attempt") or 1
    return f"{data.get('trigger', '')}" + (f", attempt {attempt}" if attempt > 1 else "")


def _finished(data: dict[str, Any]) -> str:
    text = str(data.get("status", ""))
    if data.get("duration_ms") is not None:
        text += f" in {_duration(int(data['duration_ms']))}"
    if data.get("http_status") is not None:
        text += f", HTTP {data['http_status']}"
    if data.get("exit_code") is not None:
        text += f", exit {data['exit_code']}"
    if data.get("error"):
        text += f": {data['error']}"
    return text


def _duration(ms: int) -> str:
    if ms < 1000:
        return f"{ms}ms"
    return f"{ms / 1000:.1f}s" if ms < 60_000 else format_duration(round(ms / 1000))


def _output(data: Mapping[str, object]) -> str:
    lines = str(data.get("text") or "").rstrip("\n").splitlines()
    size = data.get("bytes")
    head = f"{size} bytes" if size is not None else "output"
    return f"{head}: {lines[-1]}" if lines else head


def _missed(data: Mapping[str, object]) -> str:
    count = data.get("missed_count") or 0
    return f"{count} slot{'s' if count != 1 else ''} missed"


def _job(data: Mapping[str, object]) -> str:
    parts = []
    if data.get("renamed_from"):
        parts.append(f"renamed from {data['renamed_from']}")
    if data.get("state"):
        parts.append(str(data["state"]))
    if data.get("schedule"):
        parts.append(f"{data.get('trigger')} {data['schedule']}")
    if data.get("reason"):
        parts.append(str(data["reason"]))
    return ", ".join(parts)


def _daemon(data: Mapping[str, object]) -> str:
    return f"pid {data.get('pid')} on {data.get('host')}"


_SUMMARIES: dict[EventType, Callable[[dict[str, Any]], str]] = {
    EventType.RUN_STARTED: _started,
    EventType.RUN_OUTPUT: _output,
    EventType.RUN_FINISHED: _finished,
    EventType.RUN_SKIPPED: lambda data: str(data.get("error") or "skipped"),
    EventType.RUN_MISSED: _missed,
    EventType.JOB_ADDED: _job,
    EventType.JOB_CHANGED: _job,
    EventType.DAEMON_STARTED: _daemon,
    EventType.DAEMON_STOPPED: _daemon,
}
