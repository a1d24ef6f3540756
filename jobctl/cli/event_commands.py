"""`jobctl events`: the event stream, the newest events or those after an id, and --follow."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

import click

from jobctl.cli.complete import complete_job_names
from jobctl.cli.shared import cli, db_option, json_option, read_db

if TYPE_CHECKING:
    from jobctl.models import Event

_EVENT_TYPES = (
    "run.started",
    "run.output",
    "run.finished",
    "run.skipped",
    "run.missed",
    "run.waiting",
    "job.added",
    "job.changed",
    "job.removed",
    "daemon.started",
    "daemon.stopped",
)


@cli.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as they happen.")
@click.option(
    "--since-id",
    type=click.IntRange(0),
    metavar="N",
    help="The events after id N (all of them unless --limit): resumes without a gap.",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(_EVENT_TYPES),
    metavar="TYPE",
    help="Only events of this type (repeatable): run.started, run.finished, job.changed ...",
)
@click.option("--job", metavar="NAME", shell_complete=complete_job_names, help="Only this job's.")
@click.option(
    "--limit",
    type=click.IntRange(0),
    metavar="N",
    help="How many events at most (default 20, the newest; 0: all).",
)
@db_option
@json_option
@click.pass_context
def events(
    ctx: click.Context,
    follow: bool,
    since_id: int | None,
    types: tuple[str, ...],
    job: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """The event stream: runs started and finished, output, skips and misses, jobs added,
    changed and removed, the daemon started and stopped.

    Without --since-id, the newest 20 events (--limit); with it, every event after that id.
    --follow then prints each new event as it is committed (from now on, or after
    --since-id) until Ctrl-C, SIGTERM or a closed pipe. With --json, one object per line:
    id, at, type, job, run and the event's own fields. Ids increase: remember the last one
    to resume with --since-id after a reconnect, missing nothing.

    \b
    Examples:
      jobctl events
      jobctl events --follow --json --since-id 1200
      jobctl events --type run.finished --job backup --limit 5
    """
    from jobctl.events import EventFilter, follow_events, parse_types, past_events

    where = EventFilter(parse_types(types), job, since_id, limit, follow)
    store = read_db(ctx)
    try:
        printed = past_events(store, where)
        _print(printed, as_json)
        if not follow:
            return
        if since_id is not None:
            after = printed[-1].id if printed else since_id
        else:  # following from now on
            after = store.last_event_id()
        signal.signal(signal.SIGTERM, _stop)
        for event in follow_events(store, where, after):
            _print([event], as_json)
    except KeyboardInterrupt:  # following ends only when stopped: its normal end (exit 0)
        if not follow:
            raise
    except BrokenPipeError:  # the reader went away (`| head -1`): stop quietly, exit 0
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _print(batch: list[Event], as_json: bool) -> None:
    if not batch:
        return
    from jobctl.events import event_to_dict, summary
    from jobctl.output import to_json_line, visible

    for event in batch:
        if as_json:
            click.echo(to_json_line(event_to_dict(event)))
            continue
        at = event.at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        run = str(event.run) if event.run is not None else "-"
        line = f"{at}  {event.type.value:<14}  {event.job or '-'}  {run}  {summary(event)}"
        click.echo(visible(line.rstrip()).replace("\n", " "))
    sys.stdout.flush()
