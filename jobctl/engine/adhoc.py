"""Ad hoc runs: `jobctl run --exec CMD` (or --url, --agent) fires an action once, here.

The action is validated into a job that is never stored; its run rows have no job
(`job_id` NULL) and keep the action as JSON in `adhoc`. Nothing counts them, chains after
them or pauses for them; a retry is a new `running` row started by the same process (no
queued row: if that process dies, an orphaned ad hoc run is interrupted, never retried).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jobctl.engine.claim import Claim, prepare
from jobctl.models import Owner, RunStatus, RunTrigger
from jobctl.policies import backoff_delay

if TYPE_CHECKING:
    from jobctl.models import Job
    from jobctl.store import Store


def adhoc_action(job: Job) -> str:
    """The `adhoc` column: {"action", "spec"} (secrets as written, redacted where the rules
    say, as in `show --json`), and the policies given."""
    from jobctl.jobs import redacted_spec

    return json.dumps(
        {"action": job.action.value, "spec": redacted_spec(job), "policies": job.policies.to_dict()}
    )


def start_adhoc(store: Store, job: Job, now: datetime, owner: Owner) -> Claim:
    """The ad hoc run's first `running` row, as a Claim ready to fire here."""
    with store.write():
        return _claim(store, job, RunTrigger.MANUAL, 1, now, now, owner, adhoc_action(job))


def next_adhoc_attempt(store: Store, claim: Claim, now: datetime, owner: Owner) -> Claim:
    """The next attempt of an ad hoc run that failed: a new `running` row (trigger retry)."""
    with store.write():
        previous = store.get_run(claim.run_id)
        action = previous.adhoc if previous is not None else None
        return _claim(
            store,
            claim.job,
            RunTrigger.RETRY,
            claim.attempt + 1,
            claim.scheduled_for,
            now,
            owner,
            action or adhoc_action(claim.job),
        )


def adhoc_retry_at(claim: Claim, status: str, finished_at: datetime) -> datetime | None:
    """When the next attempt of a failed ad hoc run fires, if its --retries allow one."""
    policy = claim.job.effective_policies()
    if status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED) or claim.attempt > policy.retries:
        return None
    delay = backoff_delay(policy.backoff, claim.attempt + 1) * random.uniform(0.8, 1.2)
    return finished_at + timedelta(seconds=delay)


def _claim(
    store: Store,
    job: Job,
    trigger: RunTrigger,
    attempt: int,
    slot: datetime,
    now: datetime,
    owner: Owner,
    action: str,
) -> Claim:
    run_id = store.insert_run(
        job_id=None,
        trigger=trigger,
        status=RunStatus.RUNNING,
        scheduled_for=slot,
        now=now,
        attempt=attempt,
        owner=owner,
        adhoc=action,
    )
    return prepare(store, Claim(run_id, job, trigger, attempt, slot, now, reserved_by=owner))
