"""One whole scheduling step in one call: claim what is due at `now`, fire it, record it.

`step` is the engine end to end with time as a parameter and the actions injectable
(`Runner(actions=...)`): what a test drives in-process. The daemon takes the same three
steps, but fires in tasks and records in batches as runs finish, so its loop never waits on a
run (see daemon.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.engine.claim import NO_DAEMON, Step, claim_due
from jobctl.engine.record import Recorded, record_outcomes

if TYPE_CHECKING:
    from jobctl.engine.runner import Runner
    from jobctl.models import Owner
    from jobctl.store import Store


@dataclass
class Stepped:
    """What one `step` did: what it claimed, skipped, queued and missed, and each fire's
    record (retries, chains, auto-pause, notifications as data), in claim order."""

    claimed: Step
    recorded: list[Recorded] = field(default_factory=list)


async def step(
    store: Store,
    now: datetime,
    *,
    runner: Runner,
    owner: Owner,
    awake_since: datetime,
    env: Mapping[str, str] | None = None,
    gap_cause: str = NO_DAEMON,
) -> Stepped:
    """Claim every run due at `now`, fire them together through `runner`, record the
    outcomes in one transaction (at `now`), and say what happened."""
    claimed = claim_due(store, now, awake_since=awake_since, owner=owner, gap_cause=gap_cause)
    if not claimed.claims:
        return Stepped(claimed)
    environment = env or {}
    outcomes = await asyncio.gather(*(runner.fire(claim, environment) for claim in claimed.claims))
    recorded = record_outcomes(store, list(zip(claimed.claims, outcomes, strict=True)), now)
    return Stepped(claimed, recorded)
