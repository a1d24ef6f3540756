"""`rm --force` of a job whose run is in flight (running, or claimed ahead and about to
fire): the daemon goes on firing every other job, and records nothing of the removed run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from jobctl import engine
from jobctl.catalog import remove_jobs
from jobctl.models import OutputPiece, OutputStream
from jobctl.paths import DbLocation
from jobctl.store import open_store
from tests.realparts import (
    DaemonProcess,
    add_job,
    query,
    run_jobctl,
    start_sink,
    wait_until,
)
from tests.test_batches import OWNER, T0
from tests.test_engine_step import add


def test_output_pieces_of_a_removed_run_are_dropped_and_the_others_written(
    store_at: DbLocation,
) -> None:
    store = open_store(store_at)
    add(store, "gone", every="1s")
    add(store, "kept", every="1s")
    now = T0 + timedelta(seconds=1)
    claims = {
        c.job.name: c.run_id
        for c in engine.claim_due(store, now, awake_since=T0, owner=OWNER).claims
    }
    remove_jobs(store, ["gone"], force=True)
    store.append_output(
        [
            OutputPiece(claims["gone"], 1, OutputStream.STDOUT, now, "lost\n"),
            OutputPiece(claims["kept"], 1, OutputStream.STDOUT, now, "kept\n"),
        ]
    )
    assert [p.text for p in store.output_after(claims["kept"])] == ["kept\n"]
    assert store.output_after(claims["gone"]) == []


def test_rm_force_of_a_job_printing_in_flight_leaves_the_daemon_firing_the_others(
    db_path: Path,
) -> None:
    sink = start_sink()
    try:
        add_job(db_path, "chatty", "--exec", "echo one; sleep 0.5; echo two", "--every", "1s")
        add_job(db_path, "other", "--url", sink.url + "/other", "--every", "1s")
        daemon = DaemonProcess(db_path).wait_ready()
        try:
            running = (
                "SELECT 1 FROM runs JOIN jobs ON jobs.id = runs.job_id "
                "WHERE jobs.name = 'chatty' AND runs.status = 'running'"
            )
            wait_until(lambda: query(db_path, running), what="a run of chatty in flight")
            removed = run_jobctl(db_path, "rm", "chatty", "--force", "--yes")
            assert removed.returncode == 0, removed.stderr
            before = len(sink.requests_to("/other"))
            wait_until(
                lambda: len(sink.requests_to("/other")) >= before + 3,
                what="other to fire three more times",
            )
        finally:
            assert daemon.stop() == 0
        log = daemon.log()
        assert "Traceback" not in log and "FOREIGN KEY" not in log, log
        assert query(db_path, "SELECT id FROM runs WHERE status = 'running'") == []
    finally:
        sink.close()
