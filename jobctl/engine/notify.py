"""Notifications as data: what to tell whom after a run ended, and dead-man alerts.

Built here from what recording a run led to (`record`) and from the jobs whose
`--alert-if-no-success` window has passed; the daemon only sends them (its HTTP session) and
records the answers. No network here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.engine.notice import Notice, Payload
from jobctl.timeutil import format_duration, iso_z

if TYPE_CHECKING:
    from jobctl.actions import Outcome
    from jobctl.engine.claim import Claim
    from jobctl.store import Store

__all__ = ["Notice", "Payload", "after_run", "dead_man_alerts", "run_summary"]


def after_run(claim: Claim, outcome: Outcome, *, auto_paused: bool) -> Notice | None:
    """What the job's --notify-on URLs are told about this run (and an auto-pause)."""
    stored = claim.job.policies
    if not stored.notify:
        return None  # the usual case: nobody to tell
    summary = run_summary(claim, outcome)
    events: list[tuple[str, Payload]] = [
        (url, summary) for url in stored.notify_targets(outcome.status)
    ]
    if auto_paused:
        failures = stored.max_failures
        text = (
            f"jobctl: {claim.job.name} was paused after "
            f"{failures} failure{'' if failures == 1 else 's'} in a row"
        )
        pause: Payload = {
            "job": claim.job.name,
            "event": "auto_paused",
            "run": claim.run_id,
            "text": text,
            "content": text,
        }
        events += [(target.url, pause) for target in stored.notify]
    return Notice(events, claim.run_id) if events else None


def approval_notice(claim: Claim, outcome: Outcome) -> Notice | None:
    """Every --notify-on URL of the job is told that run waits for an approval: the
    approval's text and what the team answered so far."""
    targets = claim.job.policies.notify
    if not targets:
        return None
    approval = outcome.details.get("approval") or {}
    answers = [
        {"step": step.get("n"), "agent": step.get("agent"), "answer": step.get("answer")}
        for step in outcome.details.get("steps") or []
        if step.get("answer") is not None
    ]
    text = (
        f"jobctl: {claim.job.name} (run {claim.run_id}) waits for approval: "
        f"{approval.get('text')}\n`jobctl runs approve {claim.run_id}` or "
        f"`jobctl runs reject {claim.run_id} --note WHY`"
    )
    if outcome.output:
        text += f"\n\nSo far:\n{outcome.output}"
    payload: Payload = {
        "job": claim.job.name,
        "run": claim.run_id,
        "event": "waiting",
        "status": "waiting",
        "approval": approval.get("text"),
        "step": approval.get("step"),
        "answers": answers,
        "text": text,
        "content": text[:2000],
    }
    return Notice([(target.url, payload) for target in targets], claim.run_id)


def dead_man_alerts(store: Store, now: datetime) -> list[tuple[str, Notice]]:
    """Jobs with --alert-if-no-success that have not succeeded for that long: each is marked
    alerted (once per silence) and returned as (log text, what to send)."""
    alerts = []
    for job in store.jobs_due_for_alert():
        window = job.policies.alert_if_no_success
        since = job.last_success_at or job.created_at
        if not window or since is None or (now - since).total_seconds() < window:
            continue
        assert job.id is not None
        if not store.mark_alerted(job.id, now):
            continue  # another daemon sends it
        text = (
            f"jobctl: {job.name} has not succeeded for "
            f"{format_duration(round((now - since).total_seconds()))} "
            f"(last success: {iso_z(job.last_success_at) or 'never'})"
        )
        payload: Payload = {
            "job": job.name,
            "event": "no_success",
            "last_success_at": iso_z(job.last_success_at),
            "text": text,
            "content": text,
        }
        events = [(target.url, payload) for target in job.policies.notify]
        alerts.append((text.removeprefix("jobctl: "), Notice(events, kind="alert")))
    return alerts


def run_summary(claim: Claim, outcome: Outcome) -> Payload:
    """The JSON a notification carries; `text` for Slack, `content` for Discord."""
    code = (
        f"HTTP {outcome.http_status}"
        if outcome.http_status is not None
        else f"exit {outcome.exit_code}"
        if outcome.exit_code is not None
        else ""
    )
    text = f"jobctl: {claim.job.name} {outcome.status}"
    text += f" ({code})" if code else ""
    text += f" in {format_duration(outcome.duration_ms / 1000)}"
    if outcome.error:
        text += f": {' '.join(outcome.error.split())[:200]}"
    return {
        "job": claim.job.name,
        "run": claim.run_id,
        "status": outcome.status,
        "trigger": claim.trigger,
        "attempt": claim.attempt,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
        "scheduled_for": iso_z(claim.scheduled_for),
        "text": text,
        "content": text,
    }
