"""`jobctl run`: fire a job now in this process, through its retries, or ask the daemon to."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from jobctl import engine, runs
from jobctl.actions import Cancelled, Outcome
from jobctl.engine.adhoc import next_adhoc_attempt, start_adhoc
from jobctl.engine.output import OutputWriter, Tap
from jobctl.errors import DaemonUnavailable, NotFound
from jobctl.liveness import daemon_running
from jobctl.models import Owner, Run
from jobctl.store import StoreError
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from jobctl.models import Job, JobChange
    from jobctl.paths import DbLocation
    from jobctl.store import Store

QUEUE_POLL = 0.2
ADHOC_NAME = "adhoc"  # the job name an ad hoc action sees; its runs have no job
RUN_LIMITS = engine.Limits(http=4)  # one run at a time here: the daemon's limits need not apply

Report = Callable[[engine.Recorded], None]


def run_now(
    store: Store,
    name: str,
    *,
    env: Mapping[str, str],
    report: Report,
    on_wait: Callable[[], None] | None = None,
    on_output: Tap | None = None,
) -> engine.Recorded | int:
    """Fire `name` here and block through its retries.

    Returns the last attempt's record, or the id of the `skipped` run when the overlap
    policy skipped it. With overlap `queue`, waits for the run in flight to end first.
    Output is stored as it is produced (for `runs show --follow`) and told to `on_output`.
    """
    owner = Owner.this_process()
    waited = False
    while True:
        started = engine.start_manual(store, name, utcnow(), owner)
        if started is not None:
            break
        if on_wait is not None and not waited:
            on_wait()
        waited = True
        time.sleep(QUEUE_POLL)
    if isinstance(started, int):
        return started
    return fire_here(store, started, owner, env=env, report=report, on_output=on_output)


def adhoc_job(change: JobChange, now: datetime) -> Job:
    """An ad hoc action validated as `add` validates a manual job's; it is never stored.
    Its name is what the action sees as the job's (X-Jobctl-Job, {job})."""
    from dataclasses import replace

    from jobctl.job_changes import build_job

    return build_job(replace(change, name=ADHOC_NAME, manual=True), existing=None, now=now)


def run_adhoc(
    store: Store,
    job: Job,
    *,
    env: Mapping[str, str],
    report: Report,
    on_output: Tap | None = None,
) -> engine.Recorded:
    """Fire an ad hoc action (`adhoc_job`) here, through its retries (NotFound first if
    its agent does not exist); its output is stored and told to `on_output` as it comes."""
    from jobctl.catalog import check_agent

    check_agent(store, job)
    owner = Owner.this_process()
    claim = start_adhoc(store, job, utcnow(), owner)
    return fire_here(store, claim, owner, env=env, report=report, on_output=on_output)


def fire_here(
    store: Store,
    claim: engine.Claim,
    owner: Owner,
    *,
    env: Mapping[str, str],
    report: Report,
    on_output: Tap | None = None,
) -> engine.Recorded:
    """Fire a claimed run in this process and block through its retries. Ctrl-C, SIGTERM
    or SIGHUP mark the run interrupted (keeping what it had produced) and re-raise."""
    cut_short: dict[int, Outcome] = {}  # run id -> what an interrupted attempt had produced
    output = OutputWriter(store, tap=on_output)
    previous = {signum: signal.signal(signum, _interrupt) for signum in _STOP_SIGNALS}
    try:
        return asyncio.run(_fire_with_retries(store, claim, owner, env, report, cut_short, output))
    except KeyboardInterrupt:
        try:
            output.flush()  # what the run printed before it was stopped
        except StoreError:
            pass
        with store.write():
            ids = store.running_run_ids(owner.pid, owner.host)
            runs.mark_interrupted(
                store, utcnow(), run_ids=ids, reason="interrupted: stopped by the person running it"
            )
            for run_id, partial in cut_short.items():
                if run_id in ids:  # keep what the run had sent and printed
                    store.keep_partial_output(run_id, partial.output, partial.snapshot)
            store.delete_queued_runs_of(owner)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP stops a `jobctl run` as Ctrl-C does: the run is marked, not lost."""
    raise KeyboardInterrupt


async def _fire_with_retries(
    store: Store,
    claim: engine.Claim,
    owner: Owner,
    env: Mapping[str, str],
    report: Report,
    cut_short: dict[int, Outcome],
    output: OutputWriter,
) -> engine.Recorded:
    def record_process(run_id: int, pid: int) -> None:
        try:
            with store.write():
                runs.record_process_group(store, run_id, pid)
        except StoreError:
            pass  # the death signal still takes the command along if we are killed

    runner = engine.Runner(RUN_LIMITS, on_process=record_process, output=output)
    writer = asyncio.create_task(output.flush_forever(lambda exc: isinstance(exc, StoreError)))
    try:
        while True:
            try:
                outcome = await engine.fire_unless_cancelled(runner, claim, env, store, owner)
            except Cancelled as stopped:
                cut_short[claim.run_id] = stopped.outcome
                raise
            output.flush()  # every piece before the outcome
            recorded = engine.record_outcomes(store, [(claim, outcome)], utcnow())[0]
            output.close(claim.run_id)
            report(recorded)
            if recorded.retry_at is None:
                return recorded
            await asyncio.sleep(max(0.0, (recorded.retry_at - utcnow()).total_seconds()))
            if claim.job.id is None:  # an ad hoc run retries here, or not at all
                claim = next_adhoc_attempt(store, claim, utcnow(), owner)
                continue
            following = engine.claim_reserved_retry(store, claim, utcnow(), owner)
            if following is None:  # the daemon took the retry over
                return recorded
            claim = following
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await runner.close()


def require_daemon(
    store: Store, db_path: DbLocation, otherwise: str = "run the job here without --queue"
) -> None:
    """Exit 4 unless a daemon holds the database and its heartbeat is fresh; the message
    ends with what `otherwise` the user can do."""
    if not daemon_running(store, db_path):
        raise DaemonUnavailable(
            f"no daemon is running on {db_path}: start one with `jobctl daemon`, or {otherwise}"
        )


def wait_for_run(
    store: Store,
    run_id: int,
    *,
    poll: float = QUEUE_POLL,
    on_finished: Callable[[Run], None] | None = None,
) -> Run:
    """Block until the run (and any retry of it) has a final status; return the last one.
    `on_finished` is called with each attempt as it ends, as `run_now` reports."""
    while True:
        run = store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run with id {run_id} (see `jobctl runs`)")
        if not run.status.in_flight:
            if on_finished is not None:
                on_finished(run)
            following = store.next_attempt_id(run_id)
            if following is None:
                return run
            run_id = following
            continue
        time.sleep(poll)
