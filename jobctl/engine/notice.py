"""A notification as data: the JSON payloads to POST and the run they are about."""

from __future__ import annotations

from dataclasses import dataclass, field

Payload = dict[str, object]


@dataclass
class Notice:
    """JSON payloads to POST: after run `run_id` (answers recorded on it) or an alert."""

    events: list[tuple[str, Payload]] = field(default_factory=list)
    run_id: int | None = None
    kind: str = "notification"  # or "alert": the word in a failed delivery's log line
