"""`jobctl run`: fire a job now, here or (with --queue) in the running daemon."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli.adhoc_options import adhoc_change, adhoc_given, adhoc_options
from jobctl.cli.complete import complete_job_names
from jobctl.cli.shared import cli, db_option, db_path, json_option, open_db
from jobctl.errors import Failed, Interrupted

if TYPE_CHECKING:
    from jobctl.engine import Recorded
    from jobctl.models import OutputStream, Run


def _report_attempt(recorded: Recorded) -> None:
    from jobctl.output import visible
    from jobctl.timeutil import iso_z

    claim, outcome = recorded.claim, recorded.outcome
    line = attempt_line(
        claim.run_id,
        claim.job.name if claim.job.id is not None else None,
        claim.attempt,
        outcome.status,
        outcome.http_status,
        outcome.exit_code,
        outcome.duration_ms,
        outcome.error,
    )
    if recorded.retry_at is not None:
        line += f" (retry at {iso_z(recorded.retry_at)})"
    click.echo(visible(line), err=True)


class _LiveOutput:
    """Prints a run's output to stdout as it is produced (`jobctl run NAME`), all streams in
    the order they came, as the finished run's output shows them."""

    def __init__(self) -> None:
        self.runs: set[int] = set()  # the runs whose output was printed
        self.mid_line = False
        self.gone = False  # stdout was closed by its reader

    def __call__(self, run_id: int, stream: OutputStream, text: str) -> None:
        from jobctl.output import visible

        if self.gone:
            return
        shown = visible(text)
        try:
            click.echo(shown, nl=False)  # click.echo flushes: the piece shows at once
        except BrokenPipeError:  # `jobctl run x | head -1`: the run goes on, unshown
            self.gone = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return
        self.runs.add(run_id)
        self.mid_line = not shown.endswith("\n")

    def end_line(self) -> None:
        """Before a line on stderr: end the output's last line, if it did not."""
        if self.mid_line:
            click.echo("")
            self.mid_line = False


def report_waited(run: Run) -> None:
    """The same line for an attempt the daemon ran (`run --queue --wait`)."""
    line = attempt_line(
        run.id,
        run.job,
        run.attempt,
        run.status,
        run.http_status,
        run.exit_code,
        run.duration_ms,
        run.error,
    )
    from jobctl.output import visible

    click.echo(visible(line), err=True)


def attempt_line(
    run_id: int,
    job: str | None,
    attempt: int,
    status: str,
    http_status: int | None,
    exit_code: int | None,
    duration_ms: int | None,
    error: str | None,
) -> str:
    """`run 6 of x · attempt 1 · failed · 1 ms: cannot connect...` (`ad hoc run 6 · ...`
    for a run with no job)."""
    code = (
        f"HTTP {http_status}"
        if http_status is not None
        else f"exit {exit_code}"
        if exit_code is not None
        else ""
    )
    parts = [
        f"run {run_id} of {job}" if job is not None else f"ad hoc run {run_id}",
        f"attempt {attempt}",
        status,
        code,
        f"{duration_ms} ms" if duration_ms is not None else "",
    ]
    line = " · ".join(part for part in parts if part)
    return line + (f": {error}" if error else "")


@cli.command(name="run")
@click.argument("name", required=False, shell_complete=complete_job_names)
@click.option("--queue", "queue_", is_flag=True, help="Ask the running daemon to fire it.")
@click.option("--wait", is_flag=True, help="With --queue: wait for the result.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="NAME=value file for ${NAME} references (env JOBCTL_ENV_FILE).",
)
@adhoc_options
@db_option
@json_option
@click.pass_context
def run_(
    ctx: click.Context,
    /,
    name: str | None,
    queue_: bool,
    wait: bool,
    env_file: Path | None,
    as_json: bool,
    **action: Any,
) -> None:
    """Fire a job now, here, and print the result (exit 0 on success, 1 on failure).

    Works on paused and completed jobs too. Blocks through retries; with overlap `queue`
    it first waits for the run in flight.

    Without NAME, the action options fire an ad hoc run: once, here, with no job left
    behind; its run is kept in history with no job (`jobctl runs --adhoc`).

    \b
    Examples:
      jobctl run backup && echo "backup ok"
      jobctl run backup --queue --wait
      jobctl run --exec 'make deploy' --cwd ~/src/site --timeout 10m
      jobctl run --url https://example.com/ping --retries 2
      jobctl run --agent local --prompt 'Summarize today in one line'
    """
    from jobctl import run_now
    from jobctl.output import to_json
    from jobctl.runs import get_run, run_to_dict
    from jobctl.secrets import fire_environment

    if wait and not queue_:
        raise click.UsageError("--wait goes with --queue")
    given = adhoc_given(action)
    if name is not None and given:
        raise click.UsageError(
            f"{given[0]} is for an ad hoc run: give a job NAME or an action "
            "(--exec, --url, --agent), not both (`jobctl edit` changes a job)"
        )
    if name is None and not given:
        raise click.UsageError(
            "give a job NAME, or an action to run once: --exec CMD, --url URL, "
            "or --agent AGENT --prompt TEXT"
        )
    if name is None:
        if queue_:
            raise click.UsageError("--queue asks the daemon to run a job: an ad hoc run fires here")
        _run_adhoc(ctx, action, env_file, as_json)
        return
    store = open_db(ctx)
    if queue_:
        from jobctl.catalog import get_job
        from jobctl.engine import queue_manual
        from jobctl.timeutil import utcnow

        get_job(store, name)
        run_now.require_daemon(store, db_path(ctx))
        run_id, status = queue_manual(store, name, utcnow())
        if status == "skipped":
            raise Failed(f"run {run_id} of {name} skipped: a run is in flight (overlap skip)")
        if not wait:
            click.echo(
                to_json({"job": name, "run": run_id})
                if as_json
                else f"queued run {run_id} of {name}"
            )
            return
        try:
            row = run_now.wait_for_run(store, run_id, on_finished=report_waited)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; run {run_id} of {name} goes on in the daemon: "
                f"`jobctl runs show {run_id}` shows it, `jobctl runs {name} --follow` follows it"
            ) from None
    else:
        env = fire_environment(env_file)
        live = None if as_json else _LiveOutput()
        result = run_now.run_now(
            store,
            name,
            env=env,
            report=_reporter(live),
            on_wait=lambda: click.echo(f"waiting for the run of {name} in flight", err=True),
            on_output=live,
        )
        if isinstance(result, int):
            row = get_run(store, result)
            if as_json:
                click.echo(to_json(run_to_dict(row)))
            raise Failed(f"run {result} of {name} skipped: a run is in flight (overlap skip)")
        _finish(get_run(store, result.claim.run_id), live, as_json)
        return
    _finish(row, None, as_json)


def _run_adhoc(
    ctx: click.Context, action: dict[str, Any], env_file: Path | None, as_json: bool
) -> None:
    """`jobctl run --exec CMD ...`: validate the action as `add` would, fire it here, its
    output printed as it comes."""
    from jobctl import run_now
    from jobctl.runs import get_run
    from jobctl.secrets import fire_environment
    from jobctl.timeutil import utcnow

    job = run_now.adhoc_job(adhoc_change(action), utcnow())  # bad input: nothing created
    env = fire_environment(env_file)
    store = open_db(ctx)
    live = None if as_json else _LiveOutput()
    recorded = run_now.run_adhoc(store, job, env=env, report=_reporter(live), on_output=live)
    _finish(get_run(store, recorded.claim.run_id), live, as_json)


def _reporter(live: _LiveOutput | None) -> Callable[[Recorded], None]:
    """Reports each attempt as it ends, after the output printed live."""

    def report(recorded: Recorded) -> None:
        if live is not None:
            live.end_line()
        _report_attempt(recorded)

    return report


def _finish(row: Run, live: _LiveOutput | None, as_json: bool) -> None:
    """Print the run's result (unless its output is on the screen already); exit 1 unless
    it succeeded."""
    from jobctl.models import RunStatus

    if live is None or row.id not in live.runs:
        print_run_result(row, as_json)
    if row.status == RunStatus.WAITING:  # a team's approval point: not over, not a success
        click.echo(
            f"jobctl: run {row.id} waits for an approval: the daemon goes on after "
            f"`jobctl runs approve {row.id}` (or ends it after `jobctl runs reject {row.id}`)",
            err=True,
        )
    if row.status != RunStatus.SUCCEEDED:
        sys.exit(1)


def print_run_result(row: Run, as_json: bool) -> None:
    from jobctl.output import to_json, visible
    from jobctl.runs import run_to_dict

    if as_json:
        click.echo(to_json(run_to_dict(row)))
        return
    if row.output:
        output = visible(row.output)
        click.echo(output, nl=not output.endswith("\n"))
