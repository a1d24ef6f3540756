"""One scheduling step: what is due, claim it, fire it, record what happened.

Claiming happens in one short write transaction that writes a `running` row for every fire
before any of them starts; outcomes are recorded afterwards in a second short transaction,
batched. No transaction is open while a request or a process runs.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobctl import runs
from jobctl.jobs import Job
from jobctl.policies import backoff_delay
from jobctl.schedule import EverySchedule, Schedule
from jobctl.store.sqlite import write_transaction
from jobctl.timeutil import from_db, iso_z, to_db

if TYPE_CHECKING:
    from jobctl.actions import FireContext, Outcome
    from jobctl.actions.agent import AgentFirer
    from jobctl.actions.http import HttpFirer

MAX_SLOTS_PER_TICK = 10  # a job far behind catches up over a few ticks, never floods one
MAX_CATCHUP_ALL = 100  # `--catchup all` fires at most this many missed slots per gap
MAX_COUNTED_SLOTS = 50_000  # beyond this a cron gap's size is estimated, not walked
CLAIM_BATCH = 200  # jobs claimed per step: a burst starts firing before all of it is claimed

_TINY = timedelta(microseconds=1)


@dataclass
class Claim:
    """A run row written as `running`, ready to fire."""

    run_id: int
    job: Job
    trigger: str
    attempt: int
    scheduled_for: datetime
    claimed_at: datetime
    delay: float = 0.0  # jitter, seconds to wait before firing
    payload: str | None = None
    reserved_by: runs.Owner | None = None  # `jobctl run` keeps its own retries
    agent: Any = None  # agents.Agent for agent jobs, loaded when the run is claimed
    last_output: str = ""  # the previous successful answer, for {last_output}
    payload_type: str | None = None  # the webhook's Content-Type, kept for --forward-payload

    @property
    def timeout(self) -> float:
        return float(self.job.effective_policies()["timeout"])


@dataclass
class Step:
    """What one claim step did, for the daemon to fire and to log."""

    claims: list[Claim] = field(default_factory=list)
    skipped: list[tuple[str, datetime, str]] = field(default_factory=list)
    queued: list[tuple[str, datetime]] = field(default_factory=list)
    missed: list[tuple[str, int, datetime, datetime]] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Recorded:
    """What recording an outcome led to, for logging."""

    claim: Claim
    outcome: Outcome
    retry_at: datetime | None = None
    auto_paused: bool = False
    chained: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------- claims


def _active_runs(conn: sqlite3.Connection) -> dict[int, int]:
    return {
        row[0]: row[1]
        for row in conn.execute(
            "SELECT job_id, count(*) FROM runs WHERE status = 'running' GROUP BY job_id"
        )
    }


def _has_queued(conn: sqlite3.Connection, job_id: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM runs WHERE job_id = ? AND status = 'queued' AND trigger != 'retry'",
            (job_id,),
        ).fetchone()
        is not None
    )


def claim_due(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    awake_since: datetime,
    owner: runs.Owner,
    limit: int = CLAIM_BATCH,
) -> Step:
    """Claim every due slot and every queued run that may start, in one transaction.

    Slots before `awake_since` passed while no daemon was watching: they are missed (one
    row per gap) and handled by the job's catch-up policy; later slots are due, maybe late.
    """
    step = Step()
    with write_transaction(conn):
        active = _active_runs(conn)
        due = conn.execute(
            "SELECT * FROM jobs WHERE next_run_at <= ? AND state = 'enabled' "
            "ORDER BY next_run_at LIMIT ?",
            (to_db(now), limit),
        ).fetchall()
        for row in due:
            _claim_isolated(conn, row, now, awake_since, owner, active, step)
        _claim_queued(conn, now, owner, active, step)
    return step


def _claim_isolated(
    conn: sqlite3.Connection,
    row: sqlite3.Row,
    now: datetime,
    awake_since: datetime,
    owner: runs.Owner,
    active: dict[int, int],
    step: Step,
) -> None:
    """Claim one job's slots; a job that cannot be scheduled is paused, not retried forever."""
    try:
        job = Job.from_row(row)
        plan = job.build_schedule()
        if plan is not None and job.next_run_at is not None:
            plan.next_after(job.next_run_at)  # fails here, before anything is written
    except Exception as exc:  # a broken row must not stop every other job from firing
        _pause_broken(conn, row, exc, step)
        return
    if plan is None or job.next_run_at is None or job.next_run_at >= awake_since:
        _claim_job_slots(conn, job, plan, now, awake_since, owner, active, step)
        return
    # A gap walks many slots and writes several rows: undo them all if it fails.
    claims_before = len(step.claims)
    conn.execute("SAVEPOINT claim_job")
    try:
        _claim_job_slots(conn, job, plan, now, awake_since, owner, active, step)
    except Exception as exc:
        conn.execute("ROLLBACK TO claim_job")
        del step.claims[claims_before:]
        _pause_broken(conn, row, exc, step)
    conn.execute("RELEASE claim_job")


def _pause_broken(conn: sqlite3.Connection, row: sqlite3.Row, exc: Exception, step: Step) -> None:
    reason = f"paused: its schedule could not be computed ({exc})"
    conn.execute(
        "UPDATE jobs SET state = 'paused', paused_reason = ?, next_run_at = NULL WHERE id = ?",
        (reason[:300], row["id"]),
    )
    step.broken.append((row["name"], reason))


def _claim_job_slots(
    conn: sqlite3.Connection,
    job: Job,
    plan: Schedule | None,
    now: datetime,
    awake_since: datetime,
    owner: runs.Owner,
    active: dict[int, int],
    step: Step,
) -> None:
    assert job.id is not None and job.next_run_at is not None
    slot: datetime | None = job.next_run_at
    last_slot = job.last_slot_at
    if plan is None:  # a manual job with a stale next_run_at: nothing to fire
        slot = None
    elif slot is not None and slot < awake_since:
        slot, last_slot = _handle_gap(conn, job, plan, slot, now, awake_since, owner, active, step)
    fired = 0
    while slot is not None and slot <= now and fired < MAX_SLOTS_PER_TICK:
        _fire_or_skip(conn, job, "schedule", slot, now, owner, active, step)
        last_slot = slot
        fired += 1
        slot = plan.next_after(slot) if plan is not None else None
    state = "completed" if job.trigger == "once" and slot is None else job.state
    cursor = conn.execute(
        "UPDATE jobs SET next_run_at = ?, last_slot_at = ?, state = ? "
        "WHERE id = ? AND next_run_at = ?",
        (
            to_db(slot) if slot else None,
            to_db(last_slot) if last_slot else None,
            state,
            job.id,
            to_db(job.next_run_at),
        ),
    )
    if cursor.rowcount != 1:  # someone else moved the job on: undo this job's claims
        raise RuntimeError(f"lost the claim on job {job.name!r}")


def _fire_or_skip(
    conn: sqlite3.Connection,
    job: Job,
    trigger: str,
    slot: datetime,
    now: datetime,
    owner: runs.Owner,
    active: dict[int, int],
    step: Step,
) -> None:
    """Apply the overlap policy to one slot: claim it, queue it, or record it skipped."""
    assert job.id is not None
    overlap = job.effective_policies()["overlap"]
    if active.get(job.id) and overlap != "allow":
        if overlap == "queue" and not _has_queued(conn, job.id):
            runs.insert_run(
                conn,
                job_id=job.id,
                trigger=trigger,
                status="queued",
                scheduled_for=slot,
                now=now,
                due_at=slot,
            )
            step.queued.append((job.name, slot))
            return
        runs.insert_run(
            conn,
            job_id=job.id,
            trigger=trigger,
            status="skipped",
            scheduled_for=slot,
            now=now,
            error="skipped: the previous run was still running (overlap skip)",
        )
        runs.count_skipped(conn, job.id)
        step.skipped.append((job.name, slot, trigger))
        return
    step.claims.append(_claim(conn, job, trigger, slot, now, owner, attempt=1))
    active[job.id] = active.get(job.id, 0) + 1


def _claim(
    conn: sqlite3.Connection,
    job: Job,
    trigger: str,
    slot: datetime,
    now: datetime,
    owner: runs.Owner,
    *,
    attempt: int,
    payload: str | None = None,
) -> Claim:
    assert job.id is not None
    run_id = runs.insert_run(
        conn,
        job_id=job.id,
        trigger=trigger,
        status="running",
        scheduled_for=slot,
        now=now,
        attempt=attempt,
        owner=owner,
    )
    jitter = float(job.effective_policies()["jitter"] or 0)
    delay = random.uniform(0, jitter) if jitter and trigger in ("schedule", "catchup") else 0.0
    return _prepare(conn, Claim(run_id, job, trigger, attempt, slot, now, delay, payload))


def _prepare(conn: sqlite3.Connection, claim: Claim) -> Claim:
    """Load what an agent run needs from the database while the claim's transaction is open."""
    if claim.job.action != "agent":
        return claim
    from jobctl.agents import Agent
    from jobctl.prompts import uses

    row = conn.execute(
        "SELECT * FROM agents WHERE name = ?", (claim.job.spec.get("agent"),)
    ).fetchone()
    claim.agent = Agent.from_row(row) if row else None
    if claim.agent is not None:
        claim.job.use_agent_timeout(claim.agent.timeout)  # so claim.timeout is the run's
    if uses(str(claim.job.spec.get("prompt", "")), "last_output"):
        previous = conn.execute(
            "SELECT output FROM runs WHERE job_id = ? AND status = 'succeeded' "
            "ORDER BY id DESC LIMIT 1",
            (claim.job.id,),
        ).fetchone()
        claim.last_output = previous[0] or "" if previous else ""
    return claim


def _handle_gap(
    conn: sqlite3.Connection,
    job: Job,
    plan: Schedule,
    first: datetime,
    now: datetime,
    awake_since: datetime,
    owner: runs.Owner,
    active: dict[int, int],
    step: Step,
) -> tuple[datetime | None, datetime | None]:
    """Record the slots in [first, awake_since) as missed and fire catch-up runs.

    Returns the first slot at or after awake_since and the last slot handled.
    """
    assert job.id is not None
    policy = job.effective_policies()
    window = timedelta(seconds=policy["catchup_window"])
    keep = {"latest": 1, "all": MAX_CATCHUP_ALL, "skip": 0}[policy["catchup"]]
    gap = _walk_gap(plan, first, awake_since, now - window, keep)
    catchups = gap.recent
    missed_count = gap.count - len(catchups)
    if missed_count > 0:
        last_missed = gap.newest_missed
        details = {
            "missed_count": missed_count,
            "missed_until": iso_z(last_missed),
            "estimated": gap.estimated,
        }
        runs.insert_run(
            conn,
            job_id=job.id,
            trigger="schedule",
            status="missed",
            scheduled_for=first,
            now=now,
            details=details,
            error=f"missed {missed_count} slot{'s' if missed_count != 1 else ''} from "
            f"{iso_z(first)} to {iso_z(last_missed)}: no daemon was running",
        )
        runs.count_missed(conn, job.id, missed_count)
        step.missed.append((job.name, missed_count, first, last_missed or first))
    for index, slot in enumerate(catchups):
        if index and policy["overlap"] != "allow":
            # `--catchup all` fires every slot, one after another unless overlap allows more.
            runs.insert_run(
                conn,
                job_id=job.id,
                trigger="catchup",
                status="queued",
                scheduled_for=slot,
                now=now,
                due_at=slot,
            )
        else:
            _fire_or_skip(conn, job, "catchup", slot, now, owner, active, step)
    return plan.next_after(awake_since - _TINY), gap.last


@dataclass
class _Gap:
    count: int
    last: datetime | None
    recent: list[datetime]  # the newest slots within the catch-up window, oldest first
    newest_missed: datetime | None  # the newest slot that is not in recent
    estimated: bool


def _walk_gap(
    plan: Schedule, first: datetime, end: datetime, window_start: datetime, keep: int
) -> _Gap:
    """Count the slots in [first, end) and keep the newest `keep` of them within the window."""
    if isinstance(plan, EverySchedule):
        return _every_gap(plan, first, end, window_start, keep)
    recent: list[datetime] = []
    before: datetime | None = None
    count = 0
    slot: datetime | None = first
    last = None
    while slot is not None and slot < end and count < MAX_COUNTED_SLOTS:
        count += 1
        last = slot
        if keep and slot >= window_start:
            recent.append(slot)
            if len(recent) > keep:
                before = recent.pop(0)
        elif not recent:
            before = slot
        slot = plan.next_after(slot)
    estimated = slot is not None and slot < end
    if estimated and last is not None and count > 1:
        # A very long gap of a very frequent cron job: estimate the rest from the pace so far.
        pace = (last - first) / (count - 1)
        count += int((end - last) / pace) if pace else 0
    return _Gap(count, last, recent, before, estimated)


def _every_gap(
    plan: EverySchedule, first: datetime, end: datetime, window_start: datetime, keep: int
) -> _Gap:
    """Intervals keep exact spacing, so a gap of any size is counted by arithmetic."""
    after_gap = plan.next_after(end - _TINY)
    assert after_gap is not None
    last = after_gap - plan.every
    if last < first:
        last = first
    count = int((last - first) / plan.every) + 1
    recent: list[datetime] = []
    slot = last
    while keep and len(recent) < keep and slot >= first and slot >= window_start:
        recent.insert(0, slot)
        slot = slot - plan.every
    return _Gap(count, last, recent, slot if slot >= first else None, False)


def _claim_queued(
    conn: sqlite3.Connection,
    now: datetime,
    owner: runs.Owner,
    active: dict[int, int],
    step: Step,
) -> None:
    """Start queued runs (overlap queue, retries, `run --queue`) whose time has come."""
    rows = conn.execute(
        "SELECT runs.id AS run_id, runs.trigger AS run_trigger, runs.attempt, "
        "runs.scheduled_for AS slot, runs.details AS run_details, jobs.* "
        "FROM runs JOIN jobs ON jobs.id = runs.job_id "
        "WHERE runs.status = 'queued' AND runs.due_at <= ? AND runs.owner_pid IS NULL "
        "ORDER BY runs.due_at, runs.id",
        (to_db(now),),
    ).fetchall()
    for row in rows:
        job = Job.from_row(row)
        assert job.id is not None
        automatic = row["run_trigger"] in ("schedule", "catchup", "webhook", "chain")
        if automatic and job.state == "paused":
            conn.execute(
                "UPDATE runs SET status = 'skipped', finished_at = ?, "
                "error = 'skipped: the job was paused' WHERE id = ?",
                (to_db(now), row["run_id"]),
            )
            runs.count_skipped(conn, job.id)
            continue
        if active.get(job.id) and job.effective_policies()["overlap"] != "allow":
            continue  # waits for the run in flight
        conn.execute(
            "UPDATE runs SET status = 'running', started_at = ?, owner_pid = ?, owner_host = ? "
            "WHERE id = ? AND status = 'queued'",
            (to_db(now), owner.pid, owner.host, row["run_id"]),
        )
        details = _loads(row["run_details"])
        step.claims.append(
            _prepare(
                conn,
                Claim(
                    row["run_id"],
                    job,
                    row["run_trigger"],
                    row["attempt"],
                    from_db(row["slot"]),
                    now,
                    payload=details.get("payload"),
                    payload_type=details.get("payload_type"),
                ),
            )
        )
        active[job.id] = active.get(job.id, 0) + 1


def _loads(text: str | None) -> dict[str, Any]:
    import json

    return dict(json.loads(text)) if text else {}


def next_wake(conn: sqlite3.Connection) -> datetime | None:
    """The earliest time anything becomes due: a job's next slot or a queued run."""
    # A queued run waiting behind a run in flight is not due: the end of that run wakes
    # the loop, so counting it here would only make the loop spin.
    row = conn.execute(
        "SELECT min(t) FROM ("
        " SELECT min(next_run_at) AS t FROM jobs WHERE state = 'enabled'"
        " AND next_run_at IS NOT NULL"
        " UNION ALL SELECT min(q.due_at) FROM runs AS q WHERE q.status = 'queued'"
        " AND q.owner_pid IS NULL AND NOT EXISTS (SELECT 1 FROM runs AS r"
        " WHERE r.job_id = q.job_id AND r.status = 'running'))"
    ).fetchone()
    return from_db(row[0]) if row and row[0] else None


# -------------------------------------------------------------------------- manual runs


def _latest_active(conn: sqlite3.Connection, job_id: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM runs WHERE job_id = ? AND status = 'running'", (job_id,)
        ).fetchone()
        is not None
    )


def start_manual(
    conn: sqlite3.Connection,
    name: str,
    now: datetime,
    owner: runs.Owner,
    *,
    trigger: str = "manual",
    payload: str | None = None,
) -> Claim | int | None:
    """Claim a run of `name` now, in this process.

    Returns the Claim; the id of a `skipped` row when the overlap policy skips it; or None
    when the policy is `queue` and a run is in flight (the caller waits and tries again).
    """
    from jobctl.jobs import get_job

    with write_transaction(conn):
        job = get_job(conn, name)
        assert job.id is not None
        orphans = runs.mark_interrupted(conn, now)
        retry_interrupted(conn, orphans, now)
        overlap = job.effective_policies()["overlap"]
        if overlap != "allow" and _latest_active(conn, job.id):
            if overlap == "queue":
                return None
            runs.count_skipped(conn, job.id)
            return runs.insert_run(
                conn,
                job_id=job.id,
                trigger=trigger,
                status="skipped",
                scheduled_for=now,
                now=now,
                error="skipped: a run of this job was in flight (overlap skip)",
            )
        claim = _claim(conn, job, trigger, now, now, owner, attempt=1, payload=payload)
        claim.reserved_by = owner
        return claim


def claim_reserved_retry(
    conn: sqlite3.Connection, claim: Claim, now: datetime, owner: runs.Owner
) -> Claim | None:
    """Start the retry that `jobctl run` queued for itself (None if someone else took it)."""
    assert claim.job.id is not None
    with write_transaction(conn):
        cursor = conn.execute(
            "UPDATE runs SET status = 'running', started_at = ?, owner_pid = ?, owner_host = ?"
            " WHERE job_id = ? AND trigger = 'retry' AND scheduled_for = ? AND attempt = ?"
            " AND status = 'queued' RETURNING id",
            (
                to_db(now),
                owner.pid,
                owner.host,
                claim.job.id,
                to_db(claim.scheduled_for),
                claim.attempt + 1,
            ),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        return _prepare(
            conn,
            Claim(
                row[0],
                claim.job,
                "retry",
                claim.attempt + 1,
                claim.scheduled_for,
                now,
                payload=claim.payload,
                reserved_by=owner,
            ),
        )


def queue_manual(
    conn: sqlite3.Connection,
    name: str,
    now: datetime,
    *,
    payload: str | None = None,
    trigger: str = "manual",
) -> tuple[int, str]:
    """Ask the daemon to run `name`: a queued row it picks up (or a skipped one)."""
    from jobctl.jobs import get_job

    with write_transaction(conn):
        return _queue(conn, get_job(conn, name), now, payload=payload, trigger=trigger)


def queue_webhook(
    conn: sqlite3.Connection,
    name: str,
    now: datetime,
    *,
    payload: str,
    payload_type: str | None = None,
    replay_keys: Sequence[str] = (),
) -> tuple[int | None, str]:
    """A webhook's run: (run id, queued|skipped), (original run id, duplicate) or paused.

    The replay check, the run and the remembered keys share one write transaction, so two
    copies of a request arriving at once start one run.
    """
    from jobctl import hooks
    from jobctl.jobs import get_job

    with write_transaction(conn):
        job = get_job(conn, name)
        assert job.id is not None
        original = hooks.seen_delivery(conn, job.id, replay_keys, now)
        if original is not None:
            return original, "duplicate"
        if job.state == "paused":
            return None, "paused"
        run_id, status = _queue(
            conn, job, now, payload=payload, payload_type=payload_type, trigger="webhook"
        )
        hooks.remember_delivery(conn, job.id, replay_keys, run_id, now)
        return run_id, status


def _queue(
    conn: sqlite3.Connection,
    job: Job,
    now: datetime,
    *,
    payload: str | None,
    trigger: str,
    payload_type: str | None = None,
) -> tuple[int, str]:
    """The queued (or overlap-skipped) row, inside the caller's write transaction."""
    assert job.id is not None
    overlap = job.effective_policies()["overlap"]
    details = _payload_details(payload, payload_type)
    if overlap == "skip" and _latest_active(conn, job.id):
        runs.count_skipped(conn, job.id)
        run_id = runs.insert_run(
            conn,
            job_id=job.id,
            trigger=trigger,
            status="skipped",
            scheduled_for=now,
            now=now,
            error="skipped: a run of this job was in flight (overlap skip)",
        )
        return run_id, "skipped"
    run_id = runs.insert_run(
        conn,
        job_id=job.id,
        trigger=trigger,
        status="queued",
        scheduled_for=now,
        now=now,
        due_at=now,
        details=details,
    )
    return run_id, "queued"


def _payload_details(payload: str | None, payload_type: str | None) -> dict[str, Any] | None:
    if payload is None:
        return None
    details: dict[str, Any] = {"payload": payload}
    if payload_type:
        details["payload_type"] = payload_type
    return details


# ---------------------------------------------------------------------------- recording


def record_outcomes(
    conn: sqlite3.Connection, finished: list[tuple[Claim, Outcome]], now: datetime
) -> list[Recorded]:
    """Finish many runs in one transaction (group commit): rows, counters, retries, pauses."""
    results = []
    with write_transaction(conn):
        chained = conn.execute("SELECT EXISTS (SELECT 1 FROM chains)").fetchone()[0]
        for claim, outcome in finished:
            results.append(_record_one(conn, claim, outcome, now, chains=bool(chained)))
    return results


def _record_one(
    conn: sqlite3.Connection,
    claim: Claim,
    outcome: Outcome,
    now: datetime,
    *,
    chains: bool = True,
) -> Recorded:
    import json

    cursor = conn.execute(
        "UPDATE runs SET status = ?, started_at = ?, finished_at = ?, duration_ms = ?, "
        "http_status = ?, exit_code = ?, error = ?, output = ?, snapshot = ?, "
        "details = ? WHERE id = ? AND status = 'running'",
        (
            outcome.status,
            to_db(outcome.started_at),
            to_db(outcome.finished_at),
            outcome.duration_ms,
            outcome.http_status,
            outcome.exit_code,
            outcome.error,
            outcome.output,
            json.dumps(outcome.snapshot) if outcome.snapshot is not None else None,
            json.dumps(outcome.details) if outcome.details else None,
            claim.run_id,
        ),
    )
    recorded = Recorded(claim, outcome)
    if cursor.rowcount != 1:
        return recorded  # the row was marked interrupted meanwhile (or the job was removed)
    assert claim.job.id is not None
    recorded.retry_at = schedule_retry(conn, claim, outcome.status, outcome.finished_at)
    runs.count_executed(
        conn, claim.job.id, outcome.status, outcome.started_at, final=recorded.retry_at is None
    )
    if recorded.retry_at is None and outcome.status != "succeeded":
        recorded.auto_paused = runs.auto_pause_if_failing(
            conn, claim.job.id, claim.job.effective_policies()["max_failures"], now
        )
    if recorded.retry_at is None and chains:
        recorded.chained = _queue_chained(conn, claim, outcome.status, now)
    return recorded


def _queue_chained(conn: sqlite3.Connection, claim: Claim, status: str, now: datetime) -> list[str]:
    """Queue runs of the jobs that run after this one ended this way (trigger `chain`)."""
    wanted = ("finished", "succeeded") if status == "succeeded" else ("finished", "failed")
    rows = conn.execute(
        "SELECT jobs.* FROM chains JOIN jobs ON jobs.id = chains.job_id "
        f"WHERE chains.upstream_id = ? AND chains.on_status IN ({', '.join('?' * 2)}) "
        "AND jobs.state = 'enabled'",
        (claim.job.id, *wanted),
    ).fetchall()
    queued = []
    for row in rows:
        job = Job.from_row(row)
        assert job.id is not None
        running = _latest_active(conn, job.id)
        if running and job.effective_policies()["overlap"] == "skip":
            runs.insert_run(
                conn,
                job_id=job.id,
                trigger="chain",
                status="skipped",
                scheduled_for=now,
                now=now,
                caused_by=claim.run_id,
                error="skipped: the previous run was still running (overlap skip)",
            )
            runs.count_skipped(conn, job.id)
            continue
        runs.insert_run(
            conn,
            job_id=job.id,
            trigger="chain",
            status="queued",
            scheduled_for=now,
            now=now,
            due_at=now,
            caused_by=claim.run_id,
        )
        queued.append(job.name)
    return queued


def schedule_retry(
    conn: sqlite3.Connection, claim: Claim, status: str, finished_at: datetime
) -> datetime | None:
    """Queue the next attempt of a failed run if the job's retries allow; its due time."""
    policy = claim.job.effective_policies()
    if status == "succeeded" or claim.attempt > policy["retries"]:
        return None
    assert claim.job.id is not None
    delay = backoff_delay(policy["backoff"], claim.attempt + 1) * random.uniform(0.8, 1.2)
    due = finished_at + timedelta(seconds=delay)
    runs.insert_run(
        conn,
        job_id=claim.job.id,
        trigger="retry",
        status="queued",
        scheduled_for=claim.scheduled_for,
        now=finished_at,
        attempt=claim.attempt + 1,
        due_at=due,
        owner=claim.reserved_by,
        details=_payload_details(claim.payload, claim.payload_type),
    )
    return due


def retry_interrupted(conn: sqlite3.Connection, orphans: list[runs.Orphan], now: datetime) -> int:
    """After marking orphans interrupted, queue retries for jobs whose policy has them."""
    queued = 0
    for orphan in orphans:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (orphan.job_id,)).fetchone()
        if row is None:
            continue
        job = Job.from_row(row)
        claim = Claim(
            orphan.run_id, job, orphan.trigger, orphan.attempt, from_db(orphan.scheduled_for), now
        )
        if schedule_retry(conn, claim, "interrupted", now) is not None:
            queued += 1
    return queued


# ------------------------------------------------------------------------------- firing


class Firers:
    """The action runners of one process: one HTTP session, bounded per action kind."""

    def __init__(
        self, *, max_http: int = 256, on_process: Callable[[int, int], None] | None = None
    ) -> None:
        """`on_process(run_id, pid)` is told of each command a run starts (it must not raise):
        the caller records the process group, for a takeover should this process die."""
        self.max_http = max_http
        self.on_process = on_process
        self._http: HttpFirer | None = None
        self._agents: AgentFirer | None = None

    @property
    def agents(self) -> AgentFirer:
        if self._agents is None:
            from jobctl.actions.agent import AgentFirer

            self._agents = AgentFirer()
        return self._agents

    @property
    def http(self) -> HttpFirer:
        # Created on first use: aiohttp costs ~150 ms to import, which exec-only runs skip.
        if self._http is None:
            from jobctl.actions.http import HttpFirer

            self._http = HttpFirer(max_connections=self.max_http)
        return self._http

    async def fire(self, claim: Claim, env: Mapping[str, str]) -> Outcome:
        from jobctl.actions import FireContext, fail_before_start
        from jobctl.actions.exec import run_command
        from jobctl.timeutil import utcnow

        context = FireContext(
            job=claim.job.name,
            run_id=claim.run_id,
            scheduled_for=claim.scheduled_for,
            attempt=claim.attempt,
            timeout=claim.timeout,
            env=env,
            payload=claim.payload,
            payload_type=claim.payload_type,
        )
        if self.on_process is not None:
            report, run_id = self.on_process, claim.run_id
            context.on_process = lambda pid: report(run_id, pid)
        spec = claim.job.spec
        if claim.job.action == "http":
            outcome = await self.http.fire(spec, context)
        elif claim.job.action == "exec":
            outcome = await run_command(spec, context)
        elif claim.job.action == "agent":
            outcome = await self._ask(claim, context)
        else:
            outcome = fail_before_start(f"unknown action kind {claim.job.action!r}", utcnow())
        return context.expansion.redact_outcome(outcome)

    async def _ask(self, claim: Claim, context: FireContext) -> Outcome:
        from jobctl.actions import fail_before_start
        from jobctl.timeutil import get_zone, utcnow

        if claim.agent is None:
            name = claim.job.spec.get("agent")
            return fail_before_start(f"agent {name!r} does not exist (any more)", utcnow())
        now = utcnow()
        context.placeholders = {
            "job": claim.job.name,
            "scheduled_for": iso_z(claim.scheduled_for) or "",
            "now": now.astimezone(get_zone(claim.job.timezone)).isoformat(timespec="seconds"),
            "last_output": claim.last_output,
            "payload": claim.payload or "",
        }
        outcome = await self.agents.ask(claim.agent, str(claim.job.spec["prompt"]), context)
        deliver = claim.job.spec.get("deliver")
        if deliver:
            text = outcome.output or outcome.error or ""
            outcome.details["delivery"] = await self.http.post_json(
                deliver,
                {
                    "job": claim.job.name,
                    "run": claim.run_id,
                    "status": outcome.status,
                    "text": text,
                    "content": text[:2000],
                },
                context.env,
            )
        return outcome

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._agents is not None:
            await self._agents.close()
