"""`engine.step` end to end in-process: a real SQLite file, fake actions, time as a parameter.

Nothing sleeps: each step is given its `now`, and the fake action answers at once (or, to
keep a run in flight, when the test releases it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from jobctl import engine
from jobctl.actions import Outcome
from jobctl.catalog import add_job
from jobctl.models import POLICY_NAMES, JobChange, Owner
from jobctl.paths import DbLocation
from jobctl.store import Store, open_store

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
OWNER = Owner.this_process()


class FakeActions:
    """Answers every claim with `status` (after `gate` opens, when there is one)."""

    def __init__(self, status: str = "succeeded", gate: asyncio.Event | None = None) -> None:
        self.status = status
        self.gate = gate
        self.fired: list[tuple[str, str, int, datetime]] = []
        self.started = asyncio.Event()
        self.closed = False

    async def fire(self, claim: engine.Claim, env: Mapping[str, str]) -> Outcome:
        self.fired.append((claim.job.name, claim.trigger, claim.attempt, claim.scheduled_for))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        failed = self.status != "succeeded"
        return Outcome(
            status=self.status,
            started_at=claim.claimed_at,
            finished_at=claim.claimed_at,
            exit_code=1 if failed else 0,
            error="exit 1" if failed else None,
        )

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def store(store_at: DbLocation) -> Store:
    return open_store(store_at)


def add(store: Store, name: str, **options: str) -> None:
    policies = {key: value for key, value in options.items() if key in POLICY_NAMES}
    fields = {key: value for key, value in options.items() if key not in POLICY_NAMES}
    change = JobChange(name=name, command="true", timezone="UTC", policies=policies, **fields)
    add_job(store, change, T0)


def statuses(store: Store) -> list[tuple[str, str, int]]:
    return [
        (run.trigger, run.status, run.attempt)
        for run in store.runs_by_id(range(1, store.newest_run_id() + 1))
    ]


def run_step(store: Store, actions: FakeActions, now: datetime) -> engine.Stepped:
    async def one() -> engine.Stepped:
        runner = engine.Runner(engine.Limits(), actions=actions)
        try:
            return await engine.step(store, now, runner=runner, owner=OWNER, awake_since=T0)
        finally:
            await runner.close()

    return asyncio.run(one())


def test_a_job_every_minute_fires_once_per_slot(store: Store) -> None:
    add(store, "j", every="1m")
    actions = FakeActions()
    assert run_step(store, actions, T0 + timedelta(seconds=30)).claimed.claims == []
    first = run_step(store, actions, T0 + timedelta(minutes=1, milliseconds=5))
    assert [(r.claim.job.name, r.outcome.status) for r in first.recorded] == [("j", "succeeded")]
    assert run_step(store, actions, T0 + timedelta(minutes=1, seconds=30)).recorded == []
    run_step(store, actions, T0 + timedelta(minutes=2, milliseconds=5))
    assert actions.fired == [
        ("j", "schedule", 1, T0 + timedelta(minutes=1)),
        ("j", "schedule", 1, T0 + timedelta(minutes=2)),
    ]
    assert actions.closed
    assert statuses(store) == [("schedule", "succeeded", 1)] * 2


def test_a_failure_with_retries_queues_the_next_attempt(store: Store) -> None:
    add(store, "r", every="1h", retries="1", backoff="10s")
    actions = FakeActions(status="failed")
    [recorded] = run_step(store, actions, T0 + timedelta(hours=1)).recorded
    assert recorded.retry_at is not None and recorded.notice is None
    assert 8 <= (recorded.retry_at - (T0 + timedelta(hours=1))).total_seconds() <= 12
    assert run_step(store, actions, T0 + timedelta(hours=1, seconds=1)).recorded == []
    [retried] = run_step(store, actions, recorded.retry_at).recorded
    assert (retried.claim.trigger, retried.claim.attempt, retried.retry_at) == ("retry", 2, None)
    assert statuses(store) == [("schedule", "failed", 1), ("retry", "failed", 2)]


def test_overlap_skip_while_a_run_is_in_flight(store: Store) -> None:
    add(store, "j", every="1m")
    gate = asyncio.Event()
    actions = FakeActions(gate=gate)

    async def scenario() -> tuple[engine.Stepped, engine.Stepped]:
        runner = engine.Runner(engine.Limits(), actions=actions)
        first = asyncio.create_task(
            engine.step(
                store, T0 + timedelta(minutes=1), runner=runner, owner=OWNER, awake_since=T0
            )
        )
        await actions.started.wait()  # the first run is in flight, its row `running`
        second = await engine.step(
            store, T0 + timedelta(minutes=2), runner=runner, owner=OWNER, awake_since=T0
        )
        gate.set()
        done = await first
        await runner.close()
        return done, second

    first, second = asyncio.run(scenario())
    assert second.claimed.claims == [] and second.recorded == []
    assert second.claimed.skipped == [("j", T0 + timedelta(minutes=2), "schedule")]
    assert [r.outcome.status for r in first.recorded] == ["succeeded"]
    assert statuses(store) == [
        ("schedule", "succeeded", 1),
        ("schedule", "skipped", 1),
    ]


def test_slots_before_awake_since_are_one_missed_row(store: Store) -> None:
    add(store, "j", every="1m")
    actions = FakeActions()

    async def one() -> engine.Stepped:
        runner = engine.Runner(engine.Limits(), actions=actions)
        now = T0 + timedelta(minutes=5, seconds=1)
        stepped = await engine.step(store, now, runner=runner, owner=OWNER, awake_since=now)
        await runner.close()
        return stepped

    stepped = asyncio.run(one())
    [(name, count, first, last, _cause)] = stepped.claimed.missed
    # The default catch-up (latest) fires the last missed slot; the others are one row.
    assert (name, count, first, last) == (
        "j",
        4,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=4),
    )
    assert actions.fired == [("j", "catchup", 1, T0 + timedelta(minutes=5))]
