"""Slots claimed ahead (the daemon claims the next moments' slots, each fired at its time):
what a person's change in that moment does to them, on both stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from jobctl import engine
from jobctl.apply_merge import merge
from jobctl.catalog import set_paused
from jobctl.engine.wake import seconds_to_wait
from jobctl.models import JobState
from jobctl.paths import DbLocation
from jobctl.store import Store, open_store
from tests.test_batches import OWNER, T0, outcome
from tests.test_engine_step import add

SLOT = T0 + timedelta(seconds=1)
MS = timedelta(milliseconds=1)


@pytest.fixture
def store(store_at: DbLocation) -> Store:
    return open_store(store_at)


def claim(store: Store, now: timedelta) -> engine.Step:
    return engine.claim_due(store, SLOT + now, awake_since=T0, owner=OWNER, ahead=0.1)


def schedule_runs(store: Store) -> list[tuple[str, str]]:
    runs = store.runs_by_id(range(1, store.newest_run_id() + 1))
    return [(run.scheduled_for.isoformat(), run.status) for run in runs]


def test_pause_and_resume_while_a_slot_is_claimed_ahead_neither_fires_it_twice_nor_stops_the_daemon(
    store: Store,
) -> None:
    add(store, "a", every="1s")
    add(store, "b", every="1s")
    ahead = claim(store, -40 * MS)
    assert [c.scheduled_for for c in ahead.claims] == [SLOT, SLOT]
    set_paused(store, ["a"], True, SLOT - 30 * MS)
    set_paused(store, ["a"], False, SLOT - 20 * MS)
    job = store.job_named("a")
    assert job is not None and job.next_run_at == SLOT + timedelta(seconds=1)
    # The next steps claim (no unique-key clash for the slot already claimed: a failing
    # step would stop every job from firing).
    engine.record_outcomes(store, [(c, outcome(c, "succeeded", SLOT)) for c in ahead.claims], SLOT)
    after = claim(store, timedelta(seconds=1) - 40 * MS)
    assert sorted(c.job.name for c in after.claims) == ["a", "b"]
    assert [slot for slot, _ in schedule_runs(store)].count(SLOT.isoformat()) == 2


def test_apply_resuming_or_retiming_a_job_while_a_slot_is_claimed_ahead_moves_it_past_that_slot(
    store: Store,
) -> None:
    add(store, "a", every="1s")
    claim(store, -40 * MS)
    old = store.job_named("a")
    assert old is not None and old.last_slot_at == SLOT
    paused = replace(old, state=JobState.PAUSED, next_run_at=None)
    resumed, retimed = merge(paused, replace(old, state=JobState.ENABLED), SLOT - 20 * MS)
    assert retimed and resumed.next_run_at == SLOT + timedelta(seconds=1)
    retimed_job, _ = merge(old, replace(old, timezone="Europe/Paris"), SLOT - 20 * MS)
    assert retimed_job.next_run_at == SLOT + timedelta(seconds=1)


def test_a_slot_held_back_for_a_run_in_flight_is_waited_for_not_claimed_again_every_tick(
    store: Store,
) -> None:
    add(store, "slow", every="1s")
    assert len(claim(store, -40 * MS).claims) == 1  # its run is still in flight a second on
    now = SLOT + timedelta(seconds=1) - 40 * MS
    held = claim(store, timedelta(seconds=1) - 40 * MS)
    assert held.claims == [] and held.claimed_until == now + timedelta(seconds=0.1)
    wait = seconds_to_wait(
        store, now, idle=0.25, soonest=0.005, lead=0.05, claimed_until=held.claimed_until
    )
    assert wait == pytest.approx(0.04)  # at its slot (decided then), not 5 ms from now
    # A slot that is not held back is still woken for ahead of time.
    assert seconds_to_wait(store, now, idle=0.25, soonest=0.005, lead=0.05) == 0.005


def test_a_claim_step_cut_short_by_its_batch_limit_promises_nothing_ahead(store: Store) -> None:
    for name in ("a", "b", "c"):
        add(store, name, every="1s")
    step = engine.claim_due(store, SLOT - 40 * MS, awake_since=T0, owner=OWNER, ahead=0.1, limit=2)
    assert len(step.claims) == 2 and step.claimed_until is None


def test_a_run_claimed_ahead_starts_at_its_slot_in_its_row_and_its_event(store: Store) -> None:
    add(store, "a", every="1s")
    ahead = claim(store, -40 * MS)
    (run,) = store.runs_by_id([ahead.claims[0].run_id])
    # Not 40 ms before its slot: a reader would see it early (negative lateness), and so
    # would the row of a daemon killed before the slot came (marked interrupted).
    assert run.status == "running" and run.started_at == SLOT
    started = [e.at for e in store.events_after(0) if e.type == "run.started"]
    assert started == [SLOT]
    engine.record_outcomes(
        store, [(ahead.claims[0], outcome(ahead.claims[0], "succeeded", SLOT))], SLOT
    )
    late = claim(store, timedelta(seconds=1) + 30 * MS)  # a slot claimed after it came
    (run,) = store.runs_by_id([late.claims[0].run_id])
    assert run.started_at == SLOT + timedelta(seconds=1) + 30 * MS
