"""`jobctl db copy`: the database moved to another (SQLite to PostgreSQL) in one command."""

from __future__ import annotations

import click

from jobctl.cli.shared import cli, db_option, db_path, json_option


@cli.group()
def db() -> None:
    """Work on the database as a whole."""


@db.command()
@click.option(
    "--to",
    "target_url",
    required=True,
    metavar="URL",
    help="The database to copy into: postgresql://USER@HOST[:PORT]/DBNAME (or an SQLite path).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=2000,
    show_default=True,
    help="Rows per transaction on the target.",
)
@db_option
@json_option
@click.pass_context
def copy(ctx: click.Context, target_url: str, batch: int, as_json: bool) -> None:
    """Copy jobs, agents, chains, webhook secrets, history and events into another database.

    In batches, with a progress line per batch on stderr; stopped (or failed) half way, the
    same command continues where it stopped, copying nothing twice; the row counts of both
    are compared at the end. Stop the daemon first; the target must hold no other jobs.

    \b
    Examples:
      jobctl db copy --to postgresql://jobctl@db.internal/jobctl
      JOBCTL_DB=~/old.db jobctl db copy --to postgresql://jobctl@localhost/jobctl
    """
    from jobctl.dbcopy import copy_database
    from jobctl.errors import Failed, InvalidInput
    from jobctl.liveness import daemon_running
    from jobctl.output import to_json
    from jobctl.paths import resolve_db_path
    from jobctl.store import open_store

    source_at, target_at = db_path(ctx), resolve_db_path(target_url)
    if str(source_at) == str(target_at):
        raise InvalidInput("--to names the database being copied: give another one")
    source = open_store(source_at, create=False)
    ctx.call_on_close(source.close)
    target = open_store(target_at)
    ctx.call_on_close(target.close)
    for store, where, side in ((source, source_at, "source"), (target, target_at, "target")):
        if daemon_running(store, where):
            raise Failed(
                f"a daemon is running on the {side} ({where}): stop it first "
                "(jobctl daemon stop), so that the copy misses nothing"
            )
    result = copy_database(
        source, target, str(source_at), lambda line: click.echo(f"jobctl: {line}", err=True), batch
    )
    if as_json:
        click.echo(to_json({"to": str(target_at), "resumed": result.resumed, **result.counts}))
        return
    counts = ", ".join(f"{count} {name}" for name, count in result.counts.items())
    click.echo(f"copied {source_at} to {target_at}: {counts} (counts checked)")
