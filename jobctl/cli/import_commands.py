"""`jobctl import crontab`: jobs from another scheduler's definitions."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli.complete import complete_zones
from jobctl.cli.progress import phased_progress, quiet_option
from jobctl.cli.shared import cli, db_option, json_option, open_db
from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from jobctl.models import Job


@cli.group(name="import")
@db_option
def import_() -> None:
    """Add jobs from another scheduler's definitions (today: a crontab).

    \b
    Examples:
      crontab -l | jobctl import crontab - --dry-run
      jobctl import crontab old-server.crontab --prefix old- --tz UTC
    """


@import_.command(name="crontab")
@click.argument("source", metavar="[FILE|-]", required=False)
@click.option("--dry-run", is_flag=True, help="Print the jobs it would add; write nothing.")
@click.option(
    "--prefix", metavar="TEXT", default="", help="Start every generated job name with TEXT."
)
@click.option(
    "--tz",
    metavar="ZONE",
    shell_complete=complete_zones,
    help="Zone of the entries no CRON_TZ line covers (default: the machine's).",
)
@quiet_option
@db_option
@json_option
@click.pass_context
def import_crontab(
    ctx: click.Context,
    source: str | None,
    dry_run: bool,
    prefix: str,
    tz: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Add an exec job for every entry of a user crontab (`crontab -l` output).

    Each job runs its command through /bin/sh (or the crontab's SHELL) in your home
    directory (or its HOME), with the crontab's NAME=value lines as --env; CRON_TZ (or TZ)
    sets the zone of the entries below it. A comment right above an entry becomes its
    description; names come from the command (`backup.sh` gives backup.sh, then
    backup.sh-2 ...). @reboot, MAILTO and commands with an unescaped % are skipped with a
    warning. All or nothing: any other bad line fails the import, naming the line, and
    adds no job. FILE - (or none, with a pipe) reads standard input. A terminal shows the
    jobs checked, then added, as progress bars on stderr.

    \b
    Examples:
      crontab -l | jobctl import crontab - --dry-run
      jobctl import crontab ~/crontab.bak --prefix cron- --tz Europe/Berlin --json
    """
    from jobctl.crontab import import_crontab as import_entries
    from jobctl.crontab import read_crontab_file
    from jobctl.timeutil import utcnow

    if source is None and sys.stdin.isatty():
        raise InvalidInput(
            "give a crontab FILE, or - to read standard input: crontab -l | jobctl import crontab -"
        )
    text = read_crontab_file("-" if source in (None, "-") else str(source))
    store = open_db(ctx)
    labels = {"checking": "checking jobs", "writing": "adding jobs"}
    with phased_progress(labels, "jobs", quiet=quiet) as on_progress:
        result = import_entries(
            store, text, utcnow(), prefix=prefix, zone=tz, dry_run=dry_run, on_progress=on_progress
        )
    for skipped in result.skipped:
        click.echo(
            f"jobctl: warning: line {skipped.line}: skipped {skipped.text!r}: {skipped.reason}",
            err=True,
        )
    for warning in result.warnings:
        click.echo(f"jobctl: warning: {warning}", err=True)
    if as_json:
        from jobctl.jobs import job_to_dict
        from jobctl.output import to_json

        click.echo(to_json([job_to_dict(item.job) for item in result.jobs]))
        return
    click.echo(_import_text(result, dry_run))


def _import_text(result: Any, dry_run: bool) -> str:
    """One aligned line per job (name, schedule, zone, command), then a count."""
    rows = [
        (item.job.name, item.job.schedule or "", item.job.timezone, _command(item.job))
        for item in result.jobs
    ]
    widths = [max((len(row[column]) for row in rows), default=0) for column in range(3)]
    verb = "would add" if dry_run else "added"
    lines = [
        f"{verb} {name:<{widths[0]}}  {schedule:<{widths[1]}}  {zone:<{widths[2]}}  {command}"
        for name, schedule, zone, command in rows
    ]
    count = len(rows)
    summary = f"{'would import' if dry_run else 'imported'} {count} job{'' if count == 1 else 's'}"
    if result.skipped:
        skipped = len(result.skipped)
        summary += f"; skipped {skipped} line{'' if skipped == 1 else 's'} (see the warnings)"
    lines.append(summary if rows or result.skipped else "nothing to import: no crontab entries")
    return "\n".join(lines)


def _command(job: Job) -> str:
    from jobctl.models import ExecSpec

    return job.spec.command if isinstance(job.spec, ExecSpec) else ""
