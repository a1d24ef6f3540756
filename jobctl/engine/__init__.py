"""One scheduling step: what is due, claim it, fire it, record what happened.

Claiming (`claim`) happens in one short write transaction that writes a `running` row for
every fire before any of them starts; the `runner` fires with no transaction open; outcomes
are recorded (`record`) afterwards in a second short transaction, batched. `requested`
holds the runs somebody asked for (`jobctl run`, `run --queue`, webhooks); `gaps` what a
gap in the daemon's watch means; `step` takes all three in one call.
"""

from __future__ import annotations

from jobctl.engine.cancel import CANCELLED_BY_REQUEST, fire_unless_cancelled
from jobctl.engine.claim import (
    CLAIM_BATCH,
    MAX_CATCHUP_ALL,
    MAX_SLOTS_PER_TICK,
    Claim,
    Step,
    claim_due,
)
from jobctl.engine.gaps import MAX_COUNTED_SLOTS
from jobctl.engine.notify import Notice, dead_man_alerts
from jobctl.engine.record import Recorded, record_outcomes, retry_interrupted, schedule_retry
from jobctl.engine.requested import (
    claim_reserved_retry,
    queue_manual,
    queue_rerun,
    queue_webhook,
    start_manual,
)
from jobctl.engine.runner import Actions, Firers, Limits, Runner
from jobctl.engine.step import Stepped, step
from jobctl.engine.wake import next_wake

__all__ = [
    "CANCELLED_BY_REQUEST",
    "CLAIM_BATCH",
    "MAX_CATCHUP_ALL",
    "MAX_COUNTED_SLOTS",
    "MAX_SLOTS_PER_TICK",
    "Actions",
    "Claim",
    "Firers",
    "Limits",
    "Notice",
    "Recorded",
    "Runner",
    "Step",
    "Stepped",
    "claim_due",
    "claim_reserved_retry",
    "dead_man_alerts",
    "fire_unless_cancelled",
    "next_wake",
    "queue_manual",
    "queue_rerun",
    "queue_webhook",
    "record_outcomes",
    "retry_interrupted",
    "schedule_retry",
    "start_manual",
    "step",
]
