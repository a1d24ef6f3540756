"""Budgets while claiming: a slot of an agent job that would pass its job's or its agent's
token budget is recorded `skipped` with the reason, and the job's notification targets are
told once per budget period (the first skip of the period)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.budgets import BudgetUse, budget_use, budgets_of
from jobctl.engine.notice import Notice, Payload
from jobctl.models import AgentSpec, RunStatus, RunTrigger
from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.models import Job
    from jobctl.store import Store


def over_budget(store: Store, job: Job, now: datetime) -> BudgetUse | None:
    """The first of the job's budgets one more call would pass, or None."""
    spec = job.spec
    if not isinstance(spec, AgentSpec):
        return None
    agent = store.find_agent(spec.agent)
    for budget in budgets_of(job, spec, agent):
        use = budget_use(store, budget, job.id, now)
        if use.would_exceed():
            return use
    return None


def skip_over_budget(
    store: Store, job: Job, trigger: RunTrigger, slot: datetime, now: datetime, use: BudgetUse
) -> Notice | None:
    """Record the slot skipped over budget; what to tell, if this is the period's first."""
    assert job.id is not None
    first = store.budget_skips_since(job.id, use.since) == 0
    reason = use.reason()
    run_id = store.insert_run(
        job_id=job.id,
        trigger=trigger,
        status=RunStatus.SKIPPED,
        scheduled_for=slot,
        now=now,
        error=reason,
        details={"budget": use.to_dict()},
    )
    store.count_skipped(job.id)
    targets = job.policies.notify
    if not first or not targets:
        return None
    text = f"jobctl: {job.name} {reason}; slots are skipped until the {use.budget.per} ends"
    payload: Payload = {
        "job": job.name,
        "event": "over_budget",
        "run": run_id,
        "status": RunStatus.SKIPPED,
        "scheduled_for": iso_z(slot),
        "budget": dict(use.to_dict()),
        "text": text,
        "content": text,
    }
    return Notice([(target.url, payload) for target in targets], run_id)
