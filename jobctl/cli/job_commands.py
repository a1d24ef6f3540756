"""Commands that change jobs: add, edit, rm, pause, resume (list, show, next: job_views)."""

from __future__ import annotations

import sys
from typing import Any

import click

from jobctl.cli.complete import complete_job_names
from jobctl.cli.job_options import (
    change_from_click,
    current_time,
    job_options,
    nothing_given,
    print_job_line,
)
from jobctl.cli.shared import cli, db_option, json_option, open_db
from jobctl.errors import InvalidInput


@cli.command()
@click.argument("name")
@job_options
@click.option("--paused", is_flag=True, help="Add the job paused.")
@db_option
@json_option
@click.pass_context
def add(ctx: click.Context, /, name: str, paused: bool, as_json: bool, **params: Any) -> None:
    """Add a job: one action and one trigger, with optional policies.

    \b
    Examples:
      jobctl add backup --url https://example.com/backup --method POST --cron '0 3 * * *'
      jobctl add report --exec 'make report' --cwd ~/src/site --every 1h --offset 5m
      jobctl add nightly --exec 'cd ~/site && make deploy >> deploy.log 2>&1' --cron '0 3 * * *'
    """
    from jobctl.catalog import add_job
    from jobctl.jobs import job_to_dict
    from jobctl.output import to_json

    change = change_from_click(params, name=name, state="paused" if paused else None)
    job = add_job(open_db(ctx), change, current_time())
    if as_json:
        click.echo(to_json(job_to_dict(job)))
    else:
        print_job_line("added", job)


@cli.command()
@click.argument("name", shell_complete=complete_job_names)
@click.option("--name", "new_name", metavar="NEW", help="Rename the job (its history stays).")
@job_options
@db_option
@json_option
@click.pass_context
def edit(ctx: click.Context, /, name: str, as_json: bool, **params: Any) -> None:
    """Change a job: each option given replaces that field; '' clears an optional one.

    \b
    Examples:
      jobctl edit backup --cron '30 3 * * *' --tz Europe/Berlin
      jobctl edit backup --header 'Authorization: Bearer ${BACKUP_TOKEN}'
    """
    from jobctl.catalog import edit_job
    from jobctl.jobs import job_to_dict
    from jobctl.output import to_json

    if nothing_given(params):
        raise InvalidInput("nothing to change: give at least one option (see `jobctl edit --help`)")
    job = edit_job(open_db(ctx), name, change_from_click(params), current_time())
    if as_json:
        click.echo(to_json(job_to_dict(job)))
    else:
        print_job_line("updated", job)


@cli.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_job_names
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Remove even while a run is in flight.")
@db_option
@click.pass_context
def rm(ctx: click.Context, names: tuple[str, ...], yes: bool, force: bool) -> None:
    """Remove jobs and their run history.

    \b
    Examples:
      jobctl rm old-report
      jobctl rm a b c --yes
    """
    from jobctl.catalog import get_jobs, remove_jobs

    store = open_db(ctx)
    if not yes and sys.stdin.isatty():
        get_jobs(store, names)  # unknown names fail before the question
        click.confirm(f"Remove {', '.join(names)} and all their runs?", abort=True)
    for removed in remove_jobs(store, names, force=force):
        click.echo(f"removed job {removed!r}")


def _set_paused(ctx: click.Context, names: tuple[str, ...], paused: bool) -> None:
    from jobctl.catalog import set_paused

    for job in set_paused(open_db(ctx), names, paused, current_time()):
        if paused:
            click.echo(f"paused job {job.name!r}")
        else:
            print_job_line("resumed", job)


@cli.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_job_names
)
@db_option
@click.pass_context
def pause(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Stop a job's automatic triggers (`jobctl run` still works).

    \b
    Examples:
      jobctl pause backup
      jobctl pause a b c
    """
    _set_paused(ctx, names, True)


@cli.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_job_names
)
@db_option
@click.pass_context
def resume(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Start a paused job's triggers again (its failure count starts over).

    \b
    Examples:
      jobctl resume backup
    """
    _set_paused(ctx, names, False)
