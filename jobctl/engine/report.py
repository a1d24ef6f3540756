"""The log lines of a scheduling step: what claiming found, and how each recorded run ended.

Per-fire lines (a run that succeeded, a slot skipped or queued behind a run in flight, a
chained run queued) are DEBUG: `summary` counts them in one INFO line a minute. A run that
did not succeed, a gap of missed slots, a retry and an auto-pause stay loud.

Written to the daemon's log ("jobctl.daemon"); the texts are part of what operators grep for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.engine.claim import Step
    from jobctl.engine.record import Recorded

log = logging.getLogger("jobctl.daemon")


def log_claimed(step: Step) -> None:
    """Slots missed, jobs paused as unreadable, slots skipped or queued behind a run."""
    log_missed(step.missed, logging.WARNING)
    for name, reason in step.broken:
        log.error("%s: %s", name, reason)
    for name, slot, trigger in step.skipped:
        log.debug(
            "%s: skipped the %s slot %s: the previous run is still running",
            name,
            trigger,
            iso_z(slot),
        )
    for name, slot, reason in step.over_budget:
        log.warning("%s: the slot %s was %s", name, iso_z(slot), reason)
    for name, slot in step.queued:
        log.debug("%s: queued the slot %s behind the run in flight", name, iso_z(slot))
    for name, slot in step.already:
        log.info("%s: the slot %s has a run already: not fired again", name, iso_z(slot))


def log_missed(missed: Sequence[tuple[str, int, datetime, datetime, str]], level: int) -> None:
    """One line per job whose slots were recorded missed (job, count, first, last, cause)."""
    for name, count, first, last, cause in missed:
        log.log(
            level,
            "%s: missed %d slot(s) from %s to %s: %s",
            name,
            count,
            iso_z(first),
            iso_z(last),
            cause,
        )


def log_recorded(item: Recorded) -> None:
    """How a run ended (DEBUG when it succeeded, WARNING otherwise), and what that led to."""
    level = logging.DEBUG if item.outcome.status == "succeeded" else logging.WARNING
    if log.isEnabledFor(level):  # skip building the line at the default level
        _log_outcome(item, level)
    _log_consequences(item)


def _log_outcome(item: Recorded, level: int) -> None:
    claim, outcome = item.claim, item.outcome
    code = (
        f" http {outcome.http_status}"
        if outcome.http_status is not None
        else f" exit {outcome.exit_code}"
        if outcome.exit_code is not None
        else ""
    )
    late = (outcome.started_at - claim.scheduled_for).total_seconds() * 1000
    log.log(
        level,
        "%s run %d %s%s in %d ms (attempt %d, %s, %d ms late)%s",
        claim.job.name,
        claim.run_id,
        outcome.status,
        code,
        outcome.duration_ms,
        claim.attempt,
        claim.trigger,
        max(0, late),
        f": {outcome.error}" if outcome.error else "",
    )


def _log_consequences(item: Recorded) -> None:
    claim = item.claim
    if item.retry_at is not None:
        log.info("%s: retry %d at %s", claim.job.name, claim.attempt + 1, iso_z(item.retry_at))
    if item.auto_paused:
        log.warning("%s: auto-paused after too many failures in a row", claim.job.name)
    for name in item.chained:
        log.debug("%s: queued after run %d of %s", name, claim.run_id, claim.job.name)
