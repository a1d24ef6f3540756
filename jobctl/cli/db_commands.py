"""`jobctl db copy`: moving a database to PostgreSQL."""

from __future__ import annotations

import click

from jobctl.cli.progress import phased_progress, quiet_option
from jobctl.cli.shared import cli, db_option, db_path, json_option


@cli.group()
@db_option
def db() -> None:
    """Move the database elsewhere (today: from SQLite to PostgreSQL).

    \b
    Examples:
      jobctl db copy --to postgresql://jobctl@db.example/jobctl
    """


@db.command()
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to copy into (postgresql://USER@HOST[:PORT]/DB).",
)
@db_option
@json_option
@quiet_option
@click.pass_context
def copy(ctx: click.Context, to: str, as_json: bool, quiet: bool) -> None:
    """Copy the SQLite database's jobs, agents, chains, history and events into PostgreSQL.

    In batches, with a progress bar per table on stderr when it is a terminal; run it again after an interruption and it goes on
    where it stopped. The rows are counted on both sides at the end. Stop the daemon first:
    runs it records meanwhile would be missing.

    \b
    Examples:
      jobctl daemon stop
      jobctl db copy --to postgresql://jobctl@db.example/jobctl
      JOBCTL_DB=postgresql://jobctl@db.example/jobctl jobctl daemon --detach
    """
    from jobctl.dbcopy import copy_database
    from jobctl.errors import DaemonUnavailable, InvalidInput, NotFound
    from jobctl.liveness import daemon_running
    from jobctl.output import to_json
    from jobctl.paths import PostgresUrl, is_postgres_url
    from jobctl.store import open_postgres
    from jobctl.store.copying import COPIED_TABLES
    from jobctl.store.sqlite import open_store as open_sqlite

    source = db_path(ctx)
    if isinstance(source, PostgresUrl):
        raise InvalidInput("db copy copies an SQLite database: --db names a PostgreSQL one")
    if not is_postgres_url(to):
        raise InvalidInput(f"--to {to!r}: give a postgresql:// URL")
    if not source.is_file():
        raise NotFound(f"no database at {source}")
    reader = open_sqlite(source, create=False)
    ctx.call_on_close(reader.close)
    if daemon_running(reader, source):
        raise DaemonUnavailable(
            f"a daemon is running on {source}: stop it first (jobctl daemon stop)"
        )
    target = open_postgres(PostgresUrl(to))
    ctx.call_on_close(target.close)

    labels = {table.name: f"copying {table.name}" for table in COPIED_TABLES}
    with phased_progress(labels, "rows", quiet=quiet) as moved:
        counts = copy_database(reader, target, progress=moved)
    if as_json:
        click.echo(to_json({count.table: count.rows for count in counts}))
    else:
        click.echo(f"copied {source} to {PostgresUrl(to)}: the rows add up in every table")
