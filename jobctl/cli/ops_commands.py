"""`jobctl doctor`, `jobctl backup` and `jobctl restore`: looking after the database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from jobctl.cli.progress import Progress, phased_progress, progress, quiet_option
from jobctl.cli.shared import cli, counted, db_file, db_option, db_path, json_option, require_db
from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from jobctl.backup import DatabaseInfo

LEVEL_COLOURS = {"ok": "32", "warn": "33", "fail": "31"}


@cli.command()
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="The daemon's NAME=value file, to check ${NAME} references against (env JOBCTL_ENV_FILE).",
)
@db_option
@json_option
@click.pass_context
def doctor(ctx: click.Context, env_file: Path | None, as_json: bool) -> None:
    """Check the database, the daemon and the configuration; change nothing.

    Exits 0 when no check fails (warnings allowed), 1 otherwise. A daemon that is not
    running is a warning.

    \b
    Examples:
      jobctl doctor
      jobctl doctor --env-file ~/.config/jobctl/secrets.env
      jobctl doctor --json | jq -r '.[] | select(.level != "ok") | .message'
    """
    from jobctl.doctor import failed, run_checks, summary
    from jobctl.output import to_json, use_colour, visible

    require_db(ctx)
    results = run_checks(db_path(ctx), env_file=env_file)
    if as_json:
        click.echo(to_json([result.to_dict() for result in results]))
    else:
        colour = use_colour()
        for result in results:
            level = f"{result.level:<6}"
            if colour:
                level = f"\x1b[{LEVEL_COLOURS[result.level]}m{result.level}\x1b[0m" + " " * (
                    6 - len(result.level)
                )
            click.echo(f"{level}{visible(result.message)}")
        click.echo(summary(results))
    if failed(results):
        ctx.exit(1)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _pages_to(bar: Progress) -> Callable[[int, int], None]:
    """A copy's (pages copied, pages in all) shown on `bar`."""

    def shown(done: int, total: int) -> None:
        bar.to(done, f"{done:,} of {total:,} pages", length=total)

    return shown


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@quiet_option
@db_option
@json_option
@click.pass_context
def backup(ctx: click.Context, file: Path, force: bool, quiet: bool, as_json: bool) -> None:
    """Copy the database to FILE (mode 0600), safely while the daemon runs.

    The copy is one complete SQLite file, checked with SQLite's integrity check before
    jobctl reports success. An existing FILE is left alone unless --force is given.

    \b
    Examples:
      jobctl backup ~/backups/jobctl-$(date +%F).db
      jobctl backup /srv/backup/jobctl.db --force --json
    """
    from jobctl.backup import backup_database
    from jobctl.output import to_json

    with progress("backing up", quiet=quiet) as bar:
        result = backup_database(db_file(ctx, "backup"), file, force=force, on_pages=_pages_to(bar))
    if as_json:
        click.echo(
            to_json(
                {
                    "path": str(result.path),
                    "bytes": result.bytes,
                    "jobs": result.jobs,
                    "runs": result.runs,
                }
            )
        )
        return
    click.echo(
        f"backed up to {result.path} ({_size(result.bytes)}, {counted(result.jobs, 'job')}, "
        f"{counted(result.runs, 'run')})"
    )


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@quiet_option
@db_option
@click.pass_context
def restore(ctx: click.Context, file: Path, yes: bool, quiet: bool) -> None:
    """Replace the database with the backup FILE; the daemon must be stopped.

    FILE must be a sound jobctl database (not from a newer jobctl). The current database
    is kept beside it as <database>.before-restore-<UTC time>, and the restored one is
    upgraded to this version's schema.

    \b
    Examples:
      jobctl daemon stop
      jobctl restore ~/backups/jobctl-2025-06-01.db
      jobctl daemon --detach
    """
    from jobctl.backup import restore_database
    from jobctl.timeutil import utcnow

    path = db_file(ctx, "restore")

    def confirm(info: DatabaseInfo) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            raise InvalidInput("restore replaces the database: confirm with --yes")
        click.confirm(
            f"Replace {path} with {info.path} "
            f"({counted(info.jobs, 'job')}, {counted(info.runs, 'run')})?",
            abort=True,
        )

    labels = {"keeping": "keeping the current database", "restoring": "restoring"}
    with phased_progress(labels, "pages", quiet=quiet) as on_pages:
        result = restore_database(path, file, utcnow(), confirm, on_pages)
    if result.kept is not None:
        click.echo(f"kept the previous database as {result.kept}")
    upgraded = (
        f", schema upgraded from version {result.from_version} to {result.to_version}"
        if result.to_version != result.from_version
        else ""
    )
    click.echo(
        f"restored {counted(result.jobs, 'job')} and {counted(result.runs, 'run')} "
        f"from {result.source} "
        f"into {result.db_path}{upgraded}"
    )
