"""`jobctl daemon stop`, `status` and `logs`: the running daemon seen from outside."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from jobctl.cli.daemon_commands import daemon
from jobctl.cli.shared import db_option, db_path, json_option, read_db, require_db
from jobctl.errors import Failed
from jobctl.paths import DbLocation


@daemon.command(name="stop")
@click.option(
    "--timeout",
    default="60s",
    show_default=True,
    metavar="D",
    help="How long to wait for it to exit.",
)
@db_option
@click.pass_context
def daemon_stop(ctx: click.Context, timeout: str) -> None:
    """Stop the daemon holding the database (SIGTERM) and wait for it to exit.

    \b
    Examples:
      jobctl daemon stop
      jobctl daemon stop --timeout 2m
    """
    from jobctl.service import stop_daemon
    from jobctl.timeutil import parse_duration

    seconds = parse_duration(timeout, what="--timeout").total_seconds()
    pid = stop_daemon(db_path(ctx), seconds)
    if pid is None:
        click.echo("the daemon is not running", err=True)
    else:
        click.echo(f"stopped the daemon (pid {pid})")


@daemon.command(name="status")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="The log file the daemon writes (default: the one it last logged to, else "
    "<database>.log).",
)
@db_option
@json_option
@click.pass_context
def daemon_status(ctx: click.Context, log_file: Path | None, as_json: bool) -> None:
    """Whether the daemon runs: pid, uptime, last tick, log file (exit 4 when not running).

    \b
    Examples:
      jobctl daemon status
      jobctl daemon status --json
    """
    from jobctl.history import status_summary
    from jobctl.liveness import daemon_running
    from jobctl.output import key_values, to_json
    from jobctl.paths import default_log_path
    from jobctl.timeutil import utcnow

    store = read_db(ctx)
    path = db_path(ctx)
    running = daemon_running(store, path)
    now = utcnow()
    info = status_summary(store, now, daemon_running=running, upcoming=0)["daemon"]
    row = store.daemon_row()
    recorded = row.log_file if row is not None else None
    info["log_file"] = str(log_file or recorded or default_log_path(path))
    info["database"] = str(path)
    if as_json:
        click.echo(to_json(info))
    else:
        started, last_tick = _human_daemon_times(info, running, now)
        click.echo(
            key_values(
                [
                    ("daemon", "running" if running else "not running"),
                    ("pid", info["pid"]),
                    ("host", info["host"]),
                    ("started", started),
                    ("last tick", last_tick),
                    ("listening", info["listen"]),
                    ("database", info["database"]),
                    ("log file", info["log_file"]),
                ]
            )
        )
    if not running:
        sys.exit(4)


def _human_daemon_times(
    info: dict[str, Any], running: bool, now: datetime
) -> tuple[str | None, str | None]:
    """`started` in local time (with `up 1m` while it runs) and `last tick` as `3s ago`."""
    from jobctl.timeutil import humanize_delta, local_text

    started = last_tick = None
    if info["started_at"]:
        moment = datetime.fromisoformat(info["started_at"].replace("Z", "+00:00"))
        started = local_text(moment)
        if running:
            started += f" (up {humanize_delta(moment, now).removesuffix(' ago')})"
    if info["last_tick_at"]:
        last_tick = humanize_delta(
            datetime.fromisoformat(info["last_tick_at"].replace("Z", "+00:00")), now
        )
    return started, last_tick


@daemon.command(name="logs")
@click.option(
    "-n",
    "lines",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="How many of the last lines to print.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="The log file (default: the one the daemon last logged to, else <database>.log).",
)
@db_option
@click.pass_context
def daemon_logs(ctx: click.Context, lines: int, follow: bool, log_file: Path | None) -> None:
    """Print the detached daemon's log.

    \b
    Examples:
      jobctl daemon logs -n 100
      jobctl daemon logs -f
    """
    from jobctl.output import visible
    from jobctl.paths import default_log_path
    from jobctl.service import follow_log, tail_lines

    if log_file is None:
        require_db(ctx)
    database = db_path(ctx)
    path = log_file or _recorded_log_file(database) or default_log_path(database)
    if not path.exists():
        raise Failed(
            f"no log file at {path} (the daemon logs there only with --detach or --log-file)"
        )
    try:
        for line in tail_lines(path, lines) if lines else []:
            click.echo(visible(line))
        if follow:
            for line in follow_log(path):
                click.echo(visible(line))
    except KeyboardInterrupt:
        if not follow:
            raise
        # Following stops only when interrupted: that is its normal end.


def _recorded_log_file(database: DbLocation) -> Path | None:
    """The log file the last daemon on this database wrote to (without creating anything)."""
    from jobctl.store import peek_daemon_row

    row = peek_daemon_row(database, timeout=5.0)
    return Path(row.log_file) if row is not None and row.log_file else None
