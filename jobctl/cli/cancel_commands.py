"""`jobctl runs cancel ID`, `jobctl cancel NAME`, `jobctl runs rerun ID`, and `runs approve` /
`runs reject` for a team's run waiting at an approval point."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from jobctl.cli.complete import complete_job_names, complete_run_ids
from jobctl.cli.runs_commands import parse_run_id, runs
from jobctl.cli.shared import cli, db_option, db_path, json_option, open_db
from jobctl.errors import Failed, Interrupted

if TYPE_CHECKING:
    from jobctl.cancels import CancelAsked
    from jobctl.store import Store

_NO_WAIT_HELP = "Return once the cancel is asked for, without waiting for the run to stop."


def _writable_store(ctx: click.Context) -> Store:
    """The database, with the runs of dead processes marked interrupted first (so that a
    cancel never waits for an owner that is gone)."""
    from jobctl.runs import tidy_orphans
    from jobctl.timeutil import utcnow

    store = open_db(ctx)
    tidy_orphans(store, utcnow())
    return store


@runs.command(name="cancel", context_settings={"ignore_unknown_options": True})
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--no-wait", is_flag=True, help=_NO_WAIT_HELP)
@db_option
@json_option
@click.pass_context
def runs_cancel(ctx: click.Context, run_id: str, no_wait: bool, as_json: bool) -> None:
    """Stop a run: a queued one at once, a running one through the daemon (or the
    `jobctl run`) running it, which ends its command or request and records it cancelled.

    Waits up to 10 s for the run to stop (a command's process group gets 5 s between
    SIGTERM and SIGKILL). A cancelled run is not retried and does not count as a failure.
    Exit 1 if the run had already ended, 3 if there is no such run.

    \b
    Examples:
      jobctl runs cancel 42
      jobctl runs cancel 42 --no-wait
    """
    from jobctl.cancels import cancel_run
    from jobctl.timeutil import utcnow

    store = _writable_store(ctx)
    asked = cancel_run(store, parse_run_id(run_id), utcnow())
    _report(store, [asked], wait=not no_wait, as_json=as_json, one=True)


@cli.command(name="cancel")
@click.argument("name", shell_complete=complete_job_names)
@click.option("--no-wait", is_flag=True, help=_NO_WAIT_HELP)
@db_option
@json_option
@click.pass_context
def cancel(ctx: click.Context, name: str, no_wait: bool, as_json: bool) -> None:
    """Stop every run of a job in flight (queued or running), as `runs cancel` does.

    Exit 1 if none is in flight.

    \b
    Examples:
      jobctl cancel backup
    """
    from jobctl.cancels import cancel_job_runs
    from jobctl.timeutil import utcnow

    store = _writable_store(ctx)
    asked = cancel_job_runs(store, name, utcnow())
    _report(store, asked, wait=not no_wait, as_json=as_json, one=False)


def _report(
    store: Store, asked: list[CancelAsked], *, wait: bool, as_json: bool, one: bool
) -> None:
    """A line per run (or JSON); exit 1 when a run did not end cancelled (after the wait)."""
    from jobctl.cancels import wait_until_ended
    from jobctl.models import RunStatus
    from jobctl.output import to_json

    results = [(item.run_id, item.job, str(item.status)) for item in asked]
    running = [item.run_id for item in asked if item.status == RunStatus.RUNNING]
    if wait and running:
        try:
            ended = {run.id: run.status for run in wait_until_ended(store, running)}
        except KeyboardInterrupt:
            raise Interrupted("interrupted; the cancel stays asked for") from None
        results = [(run_id, job, str(ended.get(run_id, status))) for run_id, job, status in results]
    if as_json:
        rows = [{"run": run_id, "job": job, "status": status} for run_id, job, status in results]
        click.echo(to_json(rows[0] if one else rows))
    problems = []
    for run_id, job, status in results:
        of = f"run {run_id} of {job or '-'}"
        if status == RunStatus.CANCELLED:
            line = f"cancelled {of}"
        elif status == RunStatus.RUNNING and not wait:
            line = f"asked to cancel {of}"
        elif status == RunStatus.RUNNING:
            problems.append(f"{of} has not stopped yet: the cancel stays asked for")
            continue
        else:
            problems.append(f"{of} ended {status} before it could be cancelled")
            continue
        if not as_json:
            click.echo(line)
    if problems:
        for message in problems[:-1]:
            click.echo(message, err=True)
        raise Failed(problems[-1])


@runs.command(name="rerun", context_settings={"ignore_unknown_options": True})
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--wait", is_flag=True, help="Wait for the new run's result, as run --queue --wait.")
@db_option
@json_option
@click.pass_context
def runs_rerun(ctx: click.Context, run_id: str, wait: bool, as_json: bool) -> None:
    """Queue a new run of a run's job with the same payload (a webhook's body), for the
    daemon to fire: trigger `rerun`, linked to the original (`runs show` says "rerun of").

    Exit 4 if no daemon is running. With --wait, exit 0 if the new run succeeds, 1 if not.

    \b
    Examples:
      jobctl runs rerun 42
      jobctl runs rerun 42 --wait
    """
    from jobctl import run_now
    from jobctl.cli.run_commands import print_run_result, report_waited
    from jobctl.engine import queue_rerun
    from jobctl.models import RunStatus
    from jobctl.output import to_json
    from jobctl.runs import get_run
    from jobctl.timeutil import utcnow

    store = open_db(ctx)
    original = parse_run_id(run_id)
    get_run(store, original)  # not found (exit 3) comes before no daemon (exit 4)
    run_now.require_daemon(store, db_path(ctx), "run the job here with `jobctl run NAME`")
    new_id, status, name = queue_rerun(store, original, utcnow())
    if status == RunStatus.SKIPPED:
        raise Failed(f"run {new_id} of {name} skipped: a run is in flight (overlap skip)")
    if not wait:
        click.echo(
            to_json({"job": name, "run": new_id, "rerun_of": original})
            if as_json
            else f"queued run {new_id} of {name} (rerun of {original})"
        )
        return
    try:
        row = run_now.wait_for_run(store, new_id, on_finished=report_waited)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; run {new_id} of {name} goes on in the daemon: "
            f"`jobctl runs show {new_id}` shows it"
        ) from None
    print_run_result(row, as_json)
    if row.status != RunStatus.SUCCEEDED:
        sys.exit(1)


@runs.command(name="approve", context_settings={"ignore_unknown_options": True})
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--note", metavar="TEXT", help="Why, kept with the run.")
@db_option
@json_option
@click.pass_context
def runs_approve(ctx: click.Context, run_id: str, note: str | None, as_json: bool) -> None:
    """Approve a team's run waiting at an approval point: the daemon goes on with the step
    after it. Exit 1 if the run does not wait for an approval.

    \b
    Examples:
      jobctl runs approve 42
      jobctl runs approve 42 --note 'checked the summary'
    """
    _decide(ctx, run_id, "approved", note, as_json)


@runs.command(name="reject", context_settings={"ignore_unknown_options": True})
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--note", metavar="TEXT", help="Why: the run's error says it.")
@db_option
@json_option
@click.pass_context
def runs_reject(ctx: click.Context, run_id: str, note: str | None, as_json: bool) -> None:
    """Reject a team's run waiting at an approval point: it ends failed with the note.
    Exit 1 if the run does not wait for an approval.

    \b
    Examples:
      jobctl runs reject 42 --note 'the numbers look wrong'
    """
    _decide(ctx, run_id, "rejected", note, as_json)


def _decide(
    ctx: click.Context, run_id: str, decision: str, note: str | None, as_json: bool
) -> None:
    from jobctl.approvals import decide
    from jobctl.liveness import daemon_running
    from jobctl.output import to_json
    from jobctl.timeutil import utcnow

    store = open_db(ctx)
    run = decide(store, parse_run_id(run_id), decision, note, utcnow())
    if as_json:
        click.echo(to_json({"run": run.id, "job": run.job, "decision": decision, "note": note}))
    else:
        then = "goes on" if decision == "approved" else "ends failed"
        click.echo(f"{decision} run {run.id} of {run.job}: it {then} at the daemon's next step")
    if not daemon_running(store, db_path(ctx)):
        click.echo(
            "jobctl: no daemon is running: the run is taken up when one starts (`jobctl daemon`)",
            err=True,
        )
