"""Run rows: writing them before a fire, finishing them after, and marking orphans.

The SQL is the store's; here are the rules: whose runs are orphans (their owner is gone),
which process groups to end, which reserved runs to release. Every function runs inside the
caller's write transaction unless it says otherwise.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl import processes
from jobctl.models import HOST as HOST
from jobctl.models import Owner as Owner  # kept importable from here
from jobctl.models import Run, RunStatus, RunTrigger
from jobctl.store.sqlite import StoreError

if TYPE_CHECKING:
    from jobctl.store import Store

if TYPE_CHECKING:
    from jobctl.store import Store

STATUSES = tuple(m.value for m in RunStatus)
TRIGGERS = tuple(m.value for m in RunTrigger)


def auto_pause_if_failing(
    store: Store, job_id: int, max_failures: int | None, now: datetime
) -> bool:
    """Pause an enabled job whose failures in a row reached its limit; True if it did."""
    if not max_failures:
        return False
    return store.pause_if_failing(job_id, max_failures, now)


def process_exists(pid: int, *, since: datetime | None = None) -> bool:
    """Whether process `pid` is alive and, when `since` is given, was already alive then.

    The second check keeps a reused pid (after a reboot, say) from passing for the owner.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    if since is None:
        return True
    started = _process_start(pid)
    return started is None or started <= since.timestamp() + 2


def _process_start(pid: int) -> float | None:
    """Start time of `pid` as a Unix timestamp, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime"))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Orphan:
    run_id: int
    job_id: int
    job: str
    trigger: RunTrigger
    attempt: int
    scheduled_for: datetime


def mark_interrupted(
    store: Store,
    now: datetime,
    *,
    run_ids: Iterable[int] | None = None,
    reason: str = "interrupted: the process running it stopped",
    ended: Mapping[int, str] | None = None,
) -> list[Orphan]:
    """Mark `running` rows interrupted: the given ones, or those whose owner is gone.

    Only owners on this host can be checked; rows of other hosts are left alone. A run's
    process group that may still live is ended first, so that no copy of its command runs
    on unsupervised: `ended` holds the notes of groups the caller already ended (with a
    grace, outside the transaction); any other is killed here at once.
    """
    wanted = set(run_ids) if run_ids is not None else None
    chosen = [
        run
        for run in store.running_runs()
        if (run.id in wanted if wanted is not None else _owner_gone(run))
    ]
    # Their jobs' counters move after the `run.finished` events: jobs first (LOCK ORDER).
    store.lock_jobs({run.job_id for run in chosen if run.job_id is not None})
    orphans = []
    for run in chosen:
        note = (ended or {}).get(run.id)
        group = _run_group(run)
        if note is None and group is not None and run.owner_host == HOST:
            note = processes.kill_group(group)
        if not store.interrupt_run(run.id, now, f"{reason}; {note}" if note else reason):
            continue  # another process ended it meanwhile
        if run.job_id is None:  # an ad hoc run: no job to count it or retry it
            continue
        store.count_executed(run.job_id, RunStatus.INTERRUPTED, run.started_at or now, final=True)
        orphans.append(
            Orphan(run.id, run.job_id, run.job or "", run.trigger, run.attempt, run.scheduled_for)
        )
    return orphans


def _owner_gone(run: Run) -> bool:
    if run.owner_host != HOST:
        return False
    return not process_exists(run.owner_pid or 0, since=run.started_at)


def _run_group(run: Run) -> processes.RunGroup | None:
    if run.pgid is None or run.pgid_started is None:
        return None
    return processes.RunGroup(run.id, run.pgid, run.pgid_started)


def orphaned_groups(store: Store) -> list[processes.RunGroup]:
    """Read-only: the process groups of `running` rows whose owner on this host is gone."""
    return [
        group
        for run in store.running_runs(host=HOST)
        if (group := _run_group(run)) is not None and _owner_gone(run)
    ]


def end_orphaned_groups(store: Store, grace: float = processes.ORPHAN_GRACE) -> dict[int, str]:
    """No transaction: SIGTERM the groups of dead owners' runs, SIGKILL them after `grace`.

    Pass the result to mark_interrupted(ended=...). Until then the rows stay `running`, so
    the overlap policy starts no second copy while the first is being ended.
    """
    groups = orphaned_groups(store)
    return processes.end_groups(groups, grace) if groups else {}


def record_process_group(store: Store, run_id: int, pgid: int) -> None:
    """The run's command started as the leader of group `pgid`: remember it (and when the
    leader started, so that a reused id is never taken for it) for whoever takes over."""
    store.record_process_group(run_id, pgid, processes.start_ticks(pgid))


def release_reserved(store: Store) -> int:
    """Queued retries kept by a `jobctl run` that died go to the daemon instead."""
    released = 0
    for run in store.reserved_queued_runs(HOST):
        if not process_exists(run.owner_pid or 0):
            store.release_run(run.id)
            released += 1
    return released


def has_orphans(store: Store) -> bool:
    """Read-only: is some `running` row owned by a process of this host that is gone?"""
    return any(_owner_gone(run) for run in store.running_runs(host=HOST))


def tidy_orphans(store: Store, now: datetime) -> None:
    """What any jobctl process does on its way: end dead owners' process groups and mark
    their runs interrupted."""
    try:
        if has_orphans(store):
            mark_orphans(store, now, ended=end_orphaned_groups(store))
    except StoreError:  # a read-only database, or a busy one: the daemon will do it
        pass


def mark_orphans(
    store: Store, now: datetime, *, ended: Mapping[int, str] | None = None
) -> list[Orphan]:
    """Own transaction: interrupted rows for every dead owner on this host."""
    with store.write():
        return mark_interrupted(store, now, ended=ended)


# ------------------------------------------------------------------------------ reading


def get_run(store: Store, run_id: int) -> Run:
    """The run with its job's name, or NotFound."""
    from jobctl.errors import NotFound

    run = store.get_run(run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id} (see `jobctl runs`)")
    return run


def run_details(run: Run) -> dict[str, Any]:
    """The run's details (what the action and jobctl noted about it), {} when none."""
    return dict(json.loads(run.details)) if run.details else {}


def run_to_dict(run: Run, *, full: bool = False) -> dict[str, Any]:
    """The contract's JSON form of a run; `full` adds the snapshot and details."""
    from jobctl.timeutil import iso_z

    data: dict[str, Any] = {
        "id": run.id,
        "job": run.job,
        "trigger": run.trigger,
        "status": run.status,
        "attempt": run.attempt,
        "scheduled_for": iso_z(run.scheduled_for),
        "started_at": iso_z(run.started_at),
        "finished_at": iso_z(run.finished_at),
        "duration_ms": run.duration_ms,
        "http_status": run.http_status,
        "exit_code": run.exit_code,
        "error": run.error,
        "output": run.output,
        "rerun_of": run.rerun_of,
        # An ad hoc run's action ({"action", "spec", "policies"}); null for a job's run.
        "adhoc": json.loads(run.adhoc) if run.adhoc else None,
    }
    details = run_details(run)
    if "timings" in details:  # an HTTP run's (http_timings): first byte, total, phases
        data["timings"] = details["timings"]
    if "steps" in details:  # a team's run: each member's turn
        data["steps"] = details["steps"]
    if run.status == RunStatus.MISSED:
        data["missed_count"] = details.get("missed_count")
        data["missed_until"] = details.get("missed_until")
    if full:
        data["snapshot"] = json.loads(run.snapshot) if run.snapshot else None
        data["details"] = details
        data["cancel_requested_at"] = iso_z(run.cancel_requested_at)
        if run.started_at:
            lateness = run.started_at - run.scheduled_for
            data["lateness_ms"] = max(0, round(lateness.total_seconds() * 1000))
    return data
