"""What a run shows while it is in flight, and the event stream: pieces of output and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobctl.models.words import EventType, OutputStream


@dataclass(frozen=True)
class OutputPiece:
    """A piece of a run's output, stored as it was produced: `seq` counts a run's pieces
    from 1 in the order they arrived, whatever their stream."""

    run_id: int
    seq: int
    stream: OutputStream
    at: datetime  # aware UTC: when it was read
    text: str


@dataclass(frozen=True)
class Event:
    """One line of the event stream. `id`s increase in the order events were committed, so
    a reader that saw id N misses nothing by asking for those after N (`--since-id`).

    `data` holds the fields a type adds (a run's `status`, a piece's `stream` and `text`,
    a job's `state` ...); `to_json` flattens it beside the common ones.
    """

    id: int
    at: datetime  # aware UTC
    type: EventType
    job: str | None = None
    run: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
