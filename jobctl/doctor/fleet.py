"""Doctor's check of the fleet: every queue with enabled jobs has a live daemon firing it."""

from __future__ import annotations

from jobctl.doctor.base import OK, WARN, Check, Context, listed
from jobctl.fleet_view import unserved_queues
from jobctl.store import StoreError


def check_queues(ctx: Context) -> Check:
    """A queue whose jobs no live daemon fires is a problem (its slots pass unfired and
    the live daemons record them missed); with no daemon at all, the daemon check tells."""
    assert ctx.store is not None
    try:
        live = ctx.store.live_daemons(ctx.now)
        counts = ctx.store.enabled_queue_counts()
    except StoreError:  # an older schema, set up on the next open that writes
        return Check("queues", OK, "queues not checked: the schema is older than this jobctl")
    if not live:
        return Check("queues", OK, f"queues with jobs: {listed(sorted(counts)) or 'none'}")
    lacking = unserved_queues(ctx.store, live)
    if lacking:
        names = [
            f"{item['queue']} ({item['jobs']} job{'s' if item['jobs'] != 1 else ''})"
            for item in lacking
        ]
        options = " ".join(f"--queue {item['queue']}" for item in lacking)
        return Check(
            "queues",
            WARN,
            f"no live daemon fires {listed(names)}: their slots are recorded missed; start "
            f"one with `jobctl daemon {options}`",
        )
    return Check(
        "queues",
        OK,
        f"every queue with jobs has a live daemon ({len(live)} daemon"
        f"{'s' if len(live) != 1 else ''}: {listed(sorted(counts)) or 'no jobs'})",
    )
