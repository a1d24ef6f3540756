"""`jobctl run`: fire a job now in this process, through its retries, or ask the daemon to."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from jobctl import engine, runs
from jobctl.actions import Cancelled, Outcome
from jobctl.errors import DaemonUnavailable
from jobctl.liveness import daemon_running
from jobctl.store.sqlite import write_transaction
from jobctl.timeutil import utcnow

QUEUE_POLL = 0.2

Report = Callable[[engine.Recorded], None]


def run_now(
    conn: sqlite3.Connection,
    name: str,
    *,
    env: Mapping[str, str],
    report: Report,
    on_wait: Callable[[], None] | None = None,
) -> engine.Recorded | int:
    """Fire `name` here and block through its retries.

    Returns the last attempt's record, or the id of the `skipped` run when the overlap
    policy skipped it. With overlap `queue`, waits for the run in flight to end first.
    """
    owner = runs.Owner.this_process()
    waited = False
    while True:
        started = engine.start_manual(conn, name, utcnow(), owner)
        if started is not None:
            break
        if on_wait is not None and not waited:
            on_wait()
        waited = True
        time.sleep(QUEUE_POLL)
    if isinstance(started, int):
        return started
    claim = started
    cut_short: dict[int, Outcome] = {}  # run id -> what an interrupted attempt had produced
    previous = {signum: signal.signal(signum, _interrupt) for signum in _STOP_SIGNALS}
    try:
        return asyncio.run(_fire_with_retries(conn, claim, owner, env, report, cut_short))
    except KeyboardInterrupt:
        with write_transaction(conn):
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM runs WHERE status = 'running' AND owner_pid = ? "
                    "AND owner_host = ?",
                    (owner.pid, owner.host),
                )
            ]
            runs.mark_interrupted(
                conn, utcnow(), run_ids=ids, reason="interrupted: stopped by the person running it"
            )
            for run_id, partial in cut_short.items():
                if run_id in ids:  # keep what the run had sent and printed
                    conn.execute(
                        "UPDATE runs SET output = ?, snapshot = ? WHERE id = ?",
                        (
                            partial.output or None,
                            json.dumps(partial.snapshot) if partial.snapshot else None,
                            run_id,
                        ),
                    )
            conn.execute(
                "DELETE FROM runs WHERE status = 'queued' AND owner_pid = ? AND owner_host = ?",
                (owner.pid, owner.host),
            )
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP stops a `jobctl run` as Ctrl-C does: the run is marked, not lost."""
    raise KeyboardInterrupt


async def _fire_with_retries(
    conn: sqlite3.Connection,
    claim: engine.Claim,
    owner: runs.Owner,
    env: Mapping[str, str],
    report: Report,
    cut_short: dict[int, Outcome],
) -> engine.Recorded:
    def record_process(run_id: int, pid: int) -> None:
        try:
            with write_transaction(conn):
                runs.record_process_group(conn, run_id, pid)
        except sqlite3.Error:
            pass  # the death signal still takes the command along if we are killed

    firers = engine.Firers(max_http=4, on_process=record_process)
    try:
        while True:
            try:
                outcome = await firers.fire(claim, env)
            except Cancelled as stopped:
                cut_short[claim.run_id] = stopped.outcome
                raise
            recorded = engine.record_outcomes(conn, [(claim, outcome)], utcnow())[0]
            report(recorded)
            if recorded.retry_at is None:
                return recorded
            await asyncio.sleep(max(0.0, (recorded.retry_at - utcnow()).total_seconds()))
            following = engine.claim_reserved_retry(conn, claim, utcnow(), owner)
            if following is None:  # the daemon took the retry over
                return recorded
            claim = following
    finally:
        await firers.close()


def require_daemon(conn: sqlite3.Connection, db_path: Path) -> None:
    """Exit 4 unless a daemon holds the database and its heartbeat is fresh."""
    if not daemon_running(conn, db_path):
        raise DaemonUnavailable(
            f"no daemon is running on {db_path}: start one with `jobctl daemon`, "
            "or run the job here without --queue"
        )


def wait_for_run(
    conn: sqlite3.Connection,
    run_id: int,
    *,
    poll: float = QUEUE_POLL,
    on_finished: Callable[[sqlite3.Row], None] | None = None,
) -> sqlite3.Row:
    """Block until the run (and any retry of it) has a final status; return the last one.
    `on_finished` is called with each attempt's row as it ends, as `run_now` reports."""
    while True:
        row = runs.get_run(conn, run_id)
        if row["status"] not in ("queued", "running"):
            if on_finished is not None:
                on_finished(row)
            following = conn.execute(
                "SELECT id FROM runs WHERE job_id = (SELECT job_id FROM runs WHERE id = ?) "
                "AND trigger = 'retry' AND scheduled_for = (SELECT scheduled_for FROM runs "
                "WHERE id = ?) AND attempt = ? ",
                (run_id, run_id, row["attempt"] + 1),
            ).fetchone()
            if following is None:
                return row
            run_id = following[0]
            continue
        time.sleep(poll)
