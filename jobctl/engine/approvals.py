"""Runs waiting at a team's approval point, taken up by the daemon once decided.

`runs approve` and `runs reject` write the decision into the waiting run's details; at each
step the daemon takes every decided run (and every run that waited past its team's approval
timeout) back as `running`: an approved run fires again from the step after the approval, a
rejected one ends `failed` with the note, one nobody decided ends `timed_out`. A waiting run
holds no process and no connection, so it outlives the daemon that stopped it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.engine.claim import Claim, prepare
from jobctl.models import AgentSpec, RunStatus
from jobctl.timeutil import format_duration, iso_z

if TYPE_CHECKING:
    from jobctl.actions import Outcome
    from jobctl.models import Owner, Run
    from jobctl.store import Store

APPROVED, REJECTED = "approved", "rejected"


@dataclass
class Taken:
    """What one look at the waiting runs took: claims to fire again, outcomes to record."""

    claims: list[Claim] = field(default_factory=list)
    ended: list[tuple[Claim, Outcome]] = field(default_factory=list)


def take_decided(store: Store, now: datetime, owner: Owner) -> Taken:
    taken = Taken()
    for run_id in store.waiting_run_ids():
        run = store.get_run(run_id)
        if run is None or run.job_id is None:
            continue
        job = store.job_by_id(run.job_id)
        if job is None or not isinstance(job.spec, AgentSpec):
            continue
        details: dict[str, Any] = json.loads(run.details) if run.details else {}
        ending = _ending(store, details, job.spec.team, now)
        if ending is None:
            continue
        with store.write():
            if not store.take_waiting(run.id, owner, now):
                continue  # another daemon took it
            claim = prepare(
                store, Claim(run.id, job, run.trigger, run.attempt, run.scheduled_for, now)
            )
            claim.output_seq = store.last_output_seq(run.id)
        _take(taken, claim, run, details, ending, now)
    return taken


def _ending(
    store: Store, details: dict[str, Any], team_name: str | None, now: datetime
) -> str | None:
    """approved, rejected, timed_out, or None while the run may still wait."""
    approval = details.get("approval") or {}
    decision = approval.get("decision")
    if decision in (APPROVED, REJECTED):
        return str(decision)
    team = store.team_named(team_name) if team_name else None
    asked = _time(approval.get("asked_at"))
    if team is None or asked is None:
        return RunStatus.TIMED_OUT
    waited = (now - asked).total_seconds()
    return RunStatus.TIMED_OUT if waited >= team.effective_approval_timeout else None


def _time(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _take(
    taken: Taken, claim: Claim, run: Run, details: dict[str, Any], ending: str, now: datetime
) -> None:
    from jobctl.actions import Outcome

    steps: list[dict[str, Any]] = list(details.get("steps") or [])
    approval = details.get("approval") or {}
    note = approval.get("note")
    if steps:
        steps[-1] = {**steps[-1], "status": ending, "note": note, "finished_at": iso_z(now)}
    started_at = run.started_at or now
    if ending == APPROVED:
        claim.resume_steps, claim.resume_started_at = steps, started_at
        taken.claims.append(claim)
        return
    step = approval.get("step")
    if ending == REJECTED:
        status, error = RunStatus.FAILED, f"step {step} rejected" + (f": {note}" if note else "")
    else:
        asked = _time(approval.get("asked_at"))
        waited = format_duration(round((now - asked).total_seconds())) if asked else "too long"
        status, error = RunStatus.TIMED_OUT, f"step {step}: no approval after {waited}"
    outcome = Outcome(
        status=status,
        started_at=started_at,
        finished_at=now,
        output=run.output,
        error=error,
        snapshot=json.loads(run.snapshot) if run.snapshot else None,
        details={**details, "steps": steps},
    )
    taken.ended.append((claim, outcome))
