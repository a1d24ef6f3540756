"""Worker queues on the command line and in job files; the fleet rows of either store."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobctl.models import DaemonEntry
from jobctl.paths import DbLocation
from jobctl.store import open_store
from tests.conftest import Invoke

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_add_edit_show_export_apply_carry_the_queue(jobctl: Invoke, tmp_path: Path) -> None:
    assert (
        jobctl("add", "train", "--every", "1h", "--url", "http://x/", "--queue", "gpu").exit_code
        == 0
    )
    assert jobctl("add", "plain", "--every", "1h", "--url", "http://x/").exit_code == 0
    shown = json.loads(jobctl("show", "train", "--json").stdout)
    assert shown["queue"] == "gpu"
    listed = {job["name"]: job["queue"] for job in json.loads(jobctl("list", "--json").stdout)}
    assert listed == {"train": "gpu", "plain": "default"}
    assert "queue" in jobctl("show", "train").stdout
    bad = jobctl("edit", "train", "--queue", "Not Valid")
    assert bad.exit_code == 2 and "invalid queue" in bad.stderr
    exported = jobctl("export").stdout
    assert 'queue = "gpu"' in exported and exported.count("queue =") == 1
    path = tmp_path / "jobs.toml"
    path.write_text(exported.replace('queue = "gpu"', 'queue = "cpu"'))
    assert jobctl("apply", "--file", str(path)).exit_code == 0
    assert json.loads(jobctl("show", "train", "--json").stdout)["queue"] == "cpu"
    assert jobctl("edit", "train", "--queue", "default").exit_code == 0
    assert json.loads(jobctl("show", "train", "--json").stdout)["queue"] == "default"


def _entry(name: str, pid: int, queues: tuple[str, ...], beat: datetime) -> DaemonEntry:
    return DaemonEntry(
        id=name,
        host="h",
        pid=pid,
        queues=queues,
        started_at=T0,
        last_beat_at=beat,
        lease_until=beat + timedelta(seconds=30),
    )


def test_leases_expire_once_and_a_clean_stop_releases_at_once(store_at: DbLocation) -> None:
    store = open_store(store_at)
    try:
        store.daemon_join(_entry("a", 1, (), T0))
        store.daemon_join(_entry("b", 2, ("gpu",), T0))
        store.daemon_join(_entry("c", 3, ("default",), T0))
        assert [e.id for e in store.live_daemons(T0 + timedelta(seconds=10))] == ["a", "b", "c"]
        assert store.daemon_beat(
            "a",
            T0 + timedelta(seconds=20),
            T0 + timedelta(seconds=50),
            in_flight=2,
            fired_last_minute=7,
        )
        with store.write():
            store.daemon_leave("c", T0 + timedelta(seconds=21))
        later = T0 + timedelta(seconds=40)
        assert [e.id for e in store.live_daemons(later)] == ["a"]
        with store.write():
            assert [e.id for e in store.expire_daemons(later)] == ["b"]
        with store.write():
            assert store.expire_daemons(later) == []  # declared dead once
        assert not store.daemon_beat(
            "b", later, later + timedelta(seconds=30), in_flight=0, fired_last_minute=0
        )
        [a] = store.live_daemons(later)
        assert (a.in_flight, a.fired_last_minute) == (2, 7)
    finally:
        store.close()


def test_a_dead_man_alert_is_marked_once_whoever_asks_second(store_at: DbLocation) -> None:
    from jobctl.catalog import insert_job
    from jobctl.job_changes import build_job
    from jobctl.models import JobChange

    store = open_store(store_at)
    try:
        change = JobChange(name="quiet", command="true", every="1m", timezone="UTC")
        with store.write():
            insert_job(store, build_job(change, existing=None, now=T0), T0)
        job = store.job_named("quiet")
        assert job is not None and job.id is not None
        assert store.mark_alerted(job.id, T0) is True
        assert store.mark_alerted(job.id, T0 + timedelta(seconds=1)) is False  # sent once
    finally:
        store.close()


def test_a_lease_that_runs_out_is_taken_over_at_once_not_at_the_next_heartbeat(
    store_at: DbLocation,
) -> None:
    from jobctl.chores import Chores
    from jobctl.fleet import Membership
    from jobctl.intake import LoopState
    from jobctl.models import Owner
    from jobctl.timeutil import utcnow

    store = open_store(store_at)
    try:
        now, mono = utcnow(), time.monotonic()
        fleet = Membership(store, Owner.this_process(), queues=(), lease=30.0, alone=False)
        fleet.join(now, now, listen=None, log_file=None)
        store.daemon_join(_entry("other", 999_999, (), now))
        fleet.take_over(now)
        lease_end = now + timedelta(seconds=30)
        assert fleet.next_lease_end == lease_end
        assert fleet.seconds_to_lease_end(now) == 30.0  # the loop wakes then
        state = LoopState(started_at=now, last_loop_monotonic=mono, last_tick_wall=now)
        chores = Chores(store, fleet, state, None, [], lambda: None, mono)  # type: ignore[arg-type]
        # The other daemon renews no more (its lease made to end already); the heartbeat
        # is a second away: the loop that wakes as the known lease end passes takes over.
        store.renew_lease("other", now, now - timedelta(seconds=1))
        chores.run(lease_end - timedelta(milliseconds=1), mono)
        assert "other" in [e.id for e in store.live_daemons(now - timedelta(seconds=2))]
        chores.run(lease_end + timedelta(milliseconds=1), mono)
        assert "other" not in [e.id for e in store.live_daemons(now - timedelta(seconds=2))]
        assert fleet.next_lease_end is None  # no other daemon left
    finally:
        store.close()
