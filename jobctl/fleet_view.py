"""The fleet as `status` and `doctor` show it: the live daemons, and the queues with jobs
that no live daemon fires (their slots pass unfired: the live daemons record them missed)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.models import DaemonEntry
    from jobctl.store import Store


def daemon_dict(entry: DaemonEntry) -> dict[str, object]:
    """One live daemon in `status --json` (`queues` null: every queue)."""
    return {
        "id": entry.id,
        "host": entry.host,
        "pid": entry.pid,
        "queues": list(entry.queues) or None,
        "started_at": iso_z(entry.started_at),
        "last_heartbeat_at": iso_z(entry.last_beat_at),
        "lease_until": iso_z(entry.lease_until),
        "in_flight": entry.in_flight,
        "fired_last_minute": entry.fired_last_minute,
        "listen": entry.listen,
    }


def unserved_queues(store: Store, live: list[DaemonEntry]) -> list[dict[str, object]]:
    """Queues with enabled jobs and no live daemon firing them, with their job counts."""
    return [
        {"queue": queue, "jobs": count}
        for queue, count in store.enabled_queue_counts().items()
        if not any(entry.serves(queue) for entry in live)
    ]


def fleet_summary(store: Store, now: datetime, *, running: bool) -> dict[str, object]:
    """`daemons` (the live ones, oldest first) and `unserved_queues` for `status --json`;
    no daemon is live while the daemon check says none runs."""
    live = store.live_daemons(now) if running else []
    return {
        "daemons": [daemon_dict(entry) for entry in live],
        "unserved_queues": unserved_queues(store, live),
    }
