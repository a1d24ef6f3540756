"""Deciding a team's run waiting at an approval point: `runs approve` and `runs reject`.

The decision is written into the waiting run's details; the daemon takes the run up at its
next step (jobctl.engine.approvals): an approved run goes on from the step after the
approval, a rejected one ends `failed` with the note.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.errors import Failed, InvalidInput
from jobctl.models import RunStatus
from jobctl.runs import get_run
from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.models import Run
    from jobctl.store import Store

APPROVED, REJECTED = "approved", "rejected"
MAX_NOTE = 2000
_TRIES = 5  # the daemon may write the run's notifications meanwhile: read and try again


def decide(store: Store, run_id: int, decision: str, note: str | None, now: datetime) -> Run:
    """Write `decision` (approved or rejected) with its note on a waiting run: Failed (exit
    1) when the run does not wait for an approval or was decided already."""
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"invalid --note: over {MAX_NOTE} characters")
    for _ in range(_TRIES):
        run = get_run(store, run_id)
        details = _waiting_details(run)
        approval: dict[str, object] = dict(details.get("approval") or {})
        approval.update(decision=decision, note=note or None, decided_at=iso_z(now))
        with store.write():
            if store.decide_waiting(
                run_id, run.details, json.dumps({**details, "approval": approval})
            ):
                return run
    raise Failed(f"run {run_id} kept changing while it was decided: try again")


def _waiting_details(run: Run) -> dict[str, Any]:
    if run.status != RunStatus.WAITING:
        raise Failed(f"run {run.id} is not waiting for an approval (it is {run.status})")
    details: dict[str, Any] = json.loads(run.details) if run.details else {}
    decided = (details.get("approval") or {}).get("decision")
    if decided:
        raise Failed(f"run {run.id} was {decided} already; the daemon goes on with it")
    return details


def waiting_runs(store: Store) -> list[dict[str, object]]:
    """`status --json`'s `waiting`: the runs waiting for an approval, oldest first, each
    with its approval's text, since when it waits and any decision not yet taken up."""
    items = []
    for run_id in store.waiting_run_ids():
        run = store.get_run(run_id)
        if run is None:
            continue
        details: dict[str, Any] = json.loads(run.details) if run.details else {}
        approval = details.get("approval") or {}
        items.append(
            {
                "run": run.id,
                "job": run.job,
                "step": approval.get("step"),
                "approval": approval.get("text"),
                "since": approval.get("asked_at"),
                "decision": approval.get("decision"),
            }
        )
    return items
