"""`jobctl runs show --follow ID|NAME`: a run's output as it comes, then its outcome line.

Output goes to stdout as the run produced it (both streams, in their order), flushed piece
by piece so that it works in a pipe; the lines about the run go to stderr. The exit code
is the run's: 0 if it succeeded, 1 otherwise; 130 (Ctrl-C), 143 (SIGTERM) or 141 (the
reader closed the pipe, `| head -2`) when stopped while it runs on.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from jobctl.follow import StopSignals
    from jobctl.models import Job, OutputPiece, Run
    from jobctl.store import Store


SIGPIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`'s writer


def follow_command(ctx: click.Context, run_id: int | None, name: str, as_json: bool) -> None:
    """Follow run `run_id`, or (None) the current or next run of the job `name`."""
    try:
        _follow(ctx, run_id, name, as_json)
    except BrokenPipeError:  # the reader went away: stop following; the run goes on
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(SIGPIPE_EXIT)


def _follow(ctx: click.Context, run_id: int | None, name: str, as_json: bool) -> None:
    from jobctl.cli.shared import read_db
    from jobctl.follow import StopSignals

    store = read_db(ctx, tidy=True)
    with StopSignals() as stop:
        if run_id is not None:
            run = _existing_run(store, run_id)
            job = None
        else:
            from jobctl.catalog import get_job

            job = get_job(store, name)
            found = _run_of_job(store, job, stop)
            if found is None:
                _exit_stopped(stop)
            run = found
        last = _follow_attempts(ctx, store, run, job, stop, as_json)
    if last is None:
        _exit_stopped(stop)
    if last.status != "succeeded":
        sys.exit(1)


def _existing_run(store: Store, run_id: int) -> Run:
    from jobctl.runs import get_run

    return get_run(store, run_id)


def _run_of_job(store: Store, job: Job, stop: StopSignals) -> Run | None:
    """The job's run in flight, else its next one (waited for); says which on stderr."""
    from jobctl.follow import run_to_follow, wait_for_next_run

    assert job.id is not None
    run = run_to_follow(store, job.id)
    if run is not None:
        click.echo(f"following run {run.id} of {job.name} ({run.status})", err=True)
        return run
    click.echo(f"waiting for the next run of {job.name}", err=True)
    run = wait_for_next_run(store, job.id, store.newest_run_id(), stop)
    if run is not None:
        click.echo(f"following run {run.id} of {job.name}", err=True)
    return run


def _follow_attempts(
    ctx: click.Context, store: Store, run: Run, job: Job | None, stop: StopSignals, as_json: bool
) -> Run | None:
    """Follow the run to its end; following a job, go on with the retries queued after it.
    The last attempt's run, or None when stopped."""
    from jobctl.follow import follow_run

    while True:
        if run.status == "queued":
            _say_if_no_daemon(ctx, store, run)
        printer = PiecePrinter(as_json)
        followed = follow_run(store, run.id, printer.show, stop)
        if followed.run is None:
            printer.end_line()
            return None
        run = followed.run
        printer.finish(run)
        retry = store.next_attempt_id(run.id) if run.status != "succeeded" else None
        if retry is None:
            return run
        if job is None:
            click.echo(
                f"retry queued as run {retry} (`jobctl runs show {retry} --follow`)", err=True
            )
            return run
        click.echo(f"following its retry, run {retry}", err=True)
        run = _existing_run(store, retry)


def _say_if_no_daemon(ctx: click.Context, store: Store, run: Run) -> None:
    from jobctl.cli.shared import db_path
    from jobctl.liveness import daemon_running

    if run.owner_pid is None and not daemon_running(store, db_path(ctx)):
        click.echo(
            f"run {run.id} is queued and the daemon is not running: it starts when the "
            "daemon does (`jobctl daemon`)",
            err=True,
        )


def _exit_stopped(stop: StopSignals) -> NoReturn:
    """Stopped by a signal while the run goes on: the shell's code for it, no message."""
    sys.exit(128 + (stop.received or 2))


class PiecePrinter:
    """Prints pieces as they come (text, or one JSON object per line), then the outcome."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.at_line_start = True

    def show(self, piece: OutputPiece) -> None:
        if self.as_json:
            from jobctl.output import to_json_line
            from jobctl.reports import piece_to_dict

            line = piece_to_dict(piece)
            click.echo(to_json_line(line))
            return
        from jobctl.output import visible

        if piece.text:
            click.echo(visible(piece.text), nl=False)  # click.echo flushes: pipes see it now
            self.at_line_start = piece.text.endswith("\n")

    def end_line(self) -> None:
        """Leave the terminal at the start of a line after output that did not end one."""
        if not self.at_line_start:
            click.echo("")
            self.at_line_start = True

    def finish(self, run: Run) -> None:
        """The run's outcome: its `run ... · status` line on stderr (and as JSON: the run)."""
        from jobctl.cli.run_commands import attempt_line
        from jobctl.output import visible

        self.end_line()
        if self.as_json:
            from jobctl.output import to_json_line
            from jobctl.runs import run_to_dict

            click.echo(to_json_line(run_to_dict(run)))
        line = attempt_line(
            run.id,
            run.job or "-",
            run.attempt,
            run.status,
            run.http_status,
            run.exit_code,
            run.duration_ms,
            run.error,
        )
        click.echo(visible(line), err=True)
