"""When the loop should look again: the next moment anything becomes due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobctl.store import Store


def next_wake(store: Store, queues: Sequence[str] = ()) -> datetime | None:
    """The earliest time anything becomes due: a job's next slot or a queued run."""
    # A queued run waiting behind a run in flight is not due: the end of that run wakes
    # the loop, so counting it here would only make the loop spin.
    return store.next_wake(queues)


def seconds_to_wait(
    store: Store,
    now: datetime,
    *,
    idle: float,
    soonest: float,
    queues: Sequence[str] = (),
    lead: float = 0.0,
    claimed_until: datetime | None = None,
) -> float:
    """How long a loop may sleep: until `lead` seconds before the next due time (a loop
    that claims ahead wakes a little early, and claims what comes in the next moments
    together), at most `idle`, at least `soonest` (slots closer together share one claim);
    0 while something is still due.

    A due time at or before `claimed_until` (everything claimable up to then was claimed)
    is a slot held back for a run in flight: the loop wakes at it, not `lead` before it,
    where it would claim again and again for nothing until the slot comes."""
    wake = store.next_wake(queues)
    if wake is None:
        return idle
    until = (wake - now).total_seconds()
    if until <= 0:
        return 0.0  # still due (a burst larger than one claim batch): go on at once
    if claimed_until is not None and wake <= claimed_until:
        lead = 0.0
    return max(soonest, min(idle, until - lead))
