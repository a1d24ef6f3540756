"""Runs whose process is gone: their command groups ended, their rows interrupted (and retried).

At start-up for any dead owner, every minute for a `jobctl run` killed mid-run, and at
shutdown for the daemon's own runs still in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl import runs
from jobctl.engine.record import retry_interrupted
from jobctl.store import StoreError
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from jobctl.models import DaemonEntry, Owner
    from jobctl.store import Store

log = logging.getLogger("jobctl.daemon")


def recover(store: Store, ended: Mapping[int, str] | None = None) -> None:
    """Runs left `running` by a dead process become interrupted (and maybe retried).

    Their commands' process groups are ended first (`ended`: those already ended, with a
    grace; at start-up here, before anything fires)."""
    if ended is None:
        ended = runs.end_orphaned_groups(store)
    now = utcnow()
    with store.write():
        orphans = runs.mark_interrupted(store, now, ended=ended)
        retried = retry_interrupted(store, orphans, now)
        runs.release_reserved(store)
    for orphan in orphans:
        note = ended.get(orphan.run_id)
        log.warning(
            "run %d of %s was left running by a process that died: interrupted%s",
            orphan.run_id,
            orphan.job,
            f"; {note}" if note else "",
        )
    if retried:
        log.info("queued %d retries of interrupted runs", retried)


async def check_orphans(store: Store) -> None:
    """A `jobctl run` killed mid-run leaves a row whose owner is gone: end its command's
    process group (waiting out the grace in a thread, not in the loop), interrupt it."""
    try:
        groups = runs.orphaned_groups(store)
        ended: dict[int, str] = {}
        if groups:
            from jobctl.processes import ORPHAN_GRACE, end_groups

            ended = await asyncio.to_thread(end_groups, groups, ORPHAN_GRACE)
        recover(store, ended)
    except StoreError:
        log.exception("orphan check failed")


def interrupt_own(store: Store, owner: Owner, now: datetime, daemon_id: str | None = None) -> None:
    """At shutdown: the owner's runs still `running` are interrupted; the heartbeat stops
    and the daemon's lease (`daemon_id`) is released at once."""
    with store.write():
        left = store.running_run_ids(owner.pid, owner.host)
        interrupted = runs.mark_interrupted(
            store,
            now,
            run_ids=left,
            reason="interrupted: the daemon stopped before the run finished",
        )
        store.heartbeat_stop(now)
        if daemon_id is not None:
            store.daemon_leave(daemon_id, now)
    for orphan in interrupted:
        log.warning("run %d of %s interrupted by shutdown", orphan.run_id, orphan.job)


def take_over_expired(store: Store, now: datetime) -> list[DaemonEntry]:
    """Daemons whose lease ran out are dead: their runs in flight become interrupted (and
    retried per policy). A daemon doing the same at the same moment takes none of them."""
    with store.write():
        dead = store.expire_daemons(now)
        orphans = []
        for entry in dead:
            reason = (
                f"interrupted: its daemon (pid {entry.pid} on {entry.host}) stopped renewing "
                "its lease"
            )
            left = store.running_run_ids(entry.pid, entry.host)
            orphans += runs.mark_interrupted(store, now, run_ids=left, reason=reason)
        retried = retry_interrupted(store, orphans, now)
    for entry in dead:
        log.warning(
            "daemon %s (pid %d on %s) let its lease expire: taken over",
            entry.id,
            entry.pid,
            entry.host,
        )
    for orphan in orphans:
        log.warning("run %d of %s interrupted: its daemon died", orphan.run_id, orphan.job)
    if retried:
        log.info("queued %d retries of interrupted runs", retried)
    return dead


def record_process(store: Store, run_id: int, pid: int) -> None:
    """Keep the process group a run started, for a takeover should this process die."""
    try:
        with store.write():
            runs.record_process_group(store, run_id, pid)
    except StoreError as exc:
        log.warning("run %d: could not record its process group %d: %s", run_id, pid, exc)
