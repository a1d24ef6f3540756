"""`jobctl daemon` (the tick loop) and `jobctl run` (fire a job now)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from jobctl.cli import cli, db_option, db_path, json_option, open_db, read_db, require_db
from jobctl.cli.complete import complete_job_names
from jobctl.errors import Failed, Interrupted, InvalidInput


@cli.group(invoke_without_command=True)
@click.option(
    "--max-http",
    type=click.IntRange(1, 100_000),
    default=256,
    show_default=True,
    help="HTTP runs in flight at once.",
)
@click.option(
    "--max-agent",
    type=click.IntRange(1, 10_000),
    default=8,
    show_default=True,
    help="Agent runs in flight at once.",
)
@click.option(
    "--max-exec",
    type=click.IntRange(1, 10_000),
    default=8,
    show_default=True,
    help="Exec runs in flight at once.",
)
@click.option(
    "--grace",
    default="30s",
    show_default=True,
    metavar="D",
    help="On SIGTERM, wait this long for runs in flight.",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="NAME=value file for ${NAME} references (env JOBCTL_ENV_FILE).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much to log.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Serve webhooks, /healthz and /metrics (a bare PORT means 127.0.0.1).",
)
@click.option(
    "--metrics-token-env",
    metavar="NAME",
    help="Require `Authorization: Bearer TOKEN` for /metrics, TOKEN read from this "
    "environment variable (or the env file) at start. Without it /metrics is open on "
    "loopback and refused beyond.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="Run in the background (pidfile, log file); return once it is up.",
)
@click.option(
    "--pidfile",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="With --detach: the pidfile (default: <database>.pid).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Log to this file, rotated by size (default with --detach: <database>.log).",
)
@click.option(
    "--log-max-bytes",
    type=click.IntRange(1024),
    default=10 * 1024 * 1024,
    show_default=True,
    help="Rotate the log file at this size.",
)
@click.option(
    "--log-backups",
    type=click.IntRange(0, 100),
    default=5,
    show_default=True,
    help="Rotated log files to keep.",
)
@click.option(
    "--systemd-unit",
    is_flag=True,
    help="Print a systemd unit that runs the daemon with the other options given, and exit.",
)
@click.option("--user", "user_unit", is_flag=True, help="With --systemd-unit: a user unit.")
@db_option
@click.pass_context
def daemon(
    ctx: click.Context,
    max_http: int,
    max_agent: int,
    max_exec: int,
    grace: str,
    env_file: Path | None,
    log_level: str,
    listen: str | None,
    metrics_token_env: str | None,
    detach: bool,
    pidfile: Path | None,
    log_file: Path | None,
    log_max_bytes: int,
    log_backups: int,
    systemd_unit: bool,
    user_unit: bool,
) -> None:
    """Run the scheduler (foreground, for systemd) until SIGTERM or SIGINT.

    Fires every due job, records every run, and picks up changes made with the other
    commands within a second. One daemon per database. SIGHUP reopens the log file and
    re-reads the env file.

    \b
    Examples:
      jobctl daemon
      jobctl daemon --listen 127.0.0.1:8787
      jobctl daemon --detach --env-file ~/.config/jobctl/secrets.env
      jobctl daemon --systemd-unit --user > ~/.config/systemd/user/jobctl.service
    """
    if ctx.invoked_subcommand is not None:
        return
    from jobctl.daemon import Daemon, DaemonConfig, fire_environment
    from jobctl.paths import default_log_path
    from jobctl.service import LogConfig
    from jobctl.service import systemd_unit as unit_text
    from jobctl.timeutil import parse_duration

    path = db_path(ctx)
    if systemd_unit:
        click.echo(unit_text(path, _unit_daemon_args(ctx), user=user_unit), nl=False)
        return
    if user_unit:
        raise click.UsageError("--user goes with --systemd-unit")
    if pidfile and not detach:
        raise click.UsageError("--pidfile goes with --detach")
    if detach and log_file is None:
        log_file = default_log_path(path)
    config = DaemonConfig(
        db_path=path,
        max_http=max_http,
        max_agent=max_agent,
        max_exec=max_exec,
        grace=parse_duration(grace, what="--grace").total_seconds(),
        env_file=env_file,
        log=LogConfig(level=log_level, file=log_file, max_bytes=log_max_bytes, backups=log_backups),
        listen=listen,
        metrics_token_env=metrics_token_env,
    )
    if listen:
        from jobctl.listener import parse_listen

        parse_listen(listen)  # a bad address fails here, before anything starts
    env = fire_environment(env_file)  # a bad env file fails here, before anything starts
    if metrics_token_env is not None and not env.get(metrics_token_env):
        raise InvalidInput(
            f"--metrics-token-env {metrics_token_env}: no such variable in the environment "
            "or the env file (or it is empty)"
        )
    from jobctl.store.sqlite import require_writable

    require_writable(path)  # one line, before the lock file or the log is touched
    if not detach:
        ctx.exit(Daemon(config).run())
    _detach(config, pidfile)


# Options of `jobctl daemon` that are about the unit or the launch, not the daemon it runs.
_NOT_FOR_THE_UNIT = {"systemd_unit", "user_unit", "detach", "pidfile"}


def _unit_daemon_args(ctx: click.Context) -> list[str]:
    """The daemon options given on this command line, to be given again in ExecStart.

    Built from the command's parameters, so that an option added later is carried too.
    Paths become absolute: systemd starts the daemon in /.
    """
    from click.core import ParameterSource

    for name in ("detach", "pidfile"):
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            raise click.UsageError(
                "--systemd-unit writes a unit for the foreground daemon: drop --detach and --pidfile"
            )
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if not isinstance(param, click.Option) or not name or name in _NOT_FOR_THE_UNIT:
            continue
        if name not in ctx.params or ctx.get_parameter_source(name) not in given:
            continue
        value = ctx.params[name]
        flag = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
        if param.count:
            args += [flag] * int(value)
        elif param.is_flag:
            if value:
                args.append(flag)
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
        else:
            for item in value if param.multiple else (value,):
                if item is not None:
                    items = item if isinstance(item, tuple) else (item,)
                    args += [flag, *(_unit_word(part) for part in items)]
    if ctx.params.get("env_file") is None and os.environ.get("JOBCTL_ENV_FILE"):
        # fire_environment reads this variable; the unit's daemon will not have it
        args += ["--env-file", _unit_word(Path(os.environ["JOBCTL_ENV_FILE"]))]
    return args


def _unit_word(value: object) -> str:
    return str(value.absolute() if isinstance(value, Path) else value)


def _detach(config: Any, pidfile: Path | None) -> None:
    """Check the configuration and the lock here, then start the daemon in the background."""
    from jobctl.daemon import Daemon
    from jobctl.liveness import InstanceLock
    from jobctl.service import detach
    from jobctl.store.sqlite import connect

    connect(config.db_path).close()  # creates/migrates, and fails here if it cannot
    lock = InstanceLock(config.db_path)
    lock.acquire()
    if config.listen:  # here, not in the background: a busy port is one line, at once
        from jobctl.listener import parse_listen
        from jobctl.service import check_can_listen

        try:
            check_can_listen(*parse_listen(config.listen))
        except Failed:
            lock.release()
            raise
    assert config.log.file is not None
    # The Daemon is built after the fork, so that it records the detached process as owner.
    pid = detach(
        config.db_path, config.log.file, pidfile, lambda: Daemon(config, lock).run(locked=True)
    )
    lock.release()
    if pid is not None:
        click.echo(f"jobctl daemon started (pid {pid}), logging to {config.log.file}")
        return
    from jobctl.service import tail_lines

    lines = "\n".join(f"  {line}" for line in tail_lines(config.log.file, 20))
    raise Failed(
        f"the daemon did not come up within 10s; last lines of {config.log.file}:\n{lines}"
    )


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

    conn = read_db(ctx).conn
    path = db_path(ctx)
    running = daemon_running(conn, path)
    now = utcnow()
    info = status_summary(conn, now, daemon_running=running, upcoming=0)["daemon"]
    row = conn.execute("SELECT log_file FROM daemon WHERE id = 1").fetchone()
    info["log_file"] = str(log_file or (row and row[0]) or default_log_path(path))
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


def _recorded_log_file(database: Path) -> Path | None:
    """The log file the last daemon on this database wrote to (without creating anything)."""
    import sqlite3

    if not database.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT log_file FROM daemon WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return Path(row[0]) if row and row[0] else None


def _report_attempt(recorded: Any) -> None:
    from jobctl.output import visible
    from jobctl.timeutil import iso_z

    claim, outcome = recorded.claim, recorded.outcome
    code = (
        f"HTTP {outcome.http_status}"
        if outcome.http_status is not None
        else f"exit {outcome.exit_code}"
        if outcome.exit_code is not None
        else ""
    )
    parts = [
        f"run {claim.run_id} of {claim.job.name}",
        f"attempt {claim.attempt}",
        outcome.status,
        code,
        f"{outcome.duration_ms} ms",
    ]
    line = " · ".join(part for part in parts if part)
    if outcome.error:
        line += f": {outcome.error}"
    if recorded.retry_at is not None:
        line += f" (retry at {iso_z(recorded.retry_at)})"
    click.echo(visible(line), err=True)


@cli.command(name="run")
@click.argument("name", shell_complete=complete_job_names)
@click.option("--queue", "queue_", is_flag=True, help="Ask the running daemon to fire it.")
@click.option("--wait", is_flag=True, help="With --queue: wait for the result.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="NAME=value file for ${NAME} references (env JOBCTL_ENV_FILE).",
)
@db_option
@json_option
@click.pass_context
def run_(
    ctx: click.Context, name: str, queue_: bool, wait: bool, env_file: Path | None, as_json: bool
) -> None:
    """Fire a job now, here, and print the result (exit 0 on success, 1 on failure).

    Works on paused and completed jobs too. Blocks through retries; with overlap `queue`
    it first waits for the run in flight.

    \b
    Examples:
      jobctl run backup && echo "backup ok"
      jobctl run backup --queue --wait
    """
    from jobctl import manual
    from jobctl.daemon import fire_environment
    from jobctl.output import to_json
    from jobctl.runs import get_run, run_to_dict

    conn = open_db(ctx).conn
    if wait and not queue_:
        raise click.UsageError("--wait goes with --queue")
    if queue_:
        from jobctl.engine import queue_manual
        from jobctl.jobs import get_job
        from jobctl.timeutil import utcnow

        get_job(conn, name)
        manual.require_daemon(conn, db_path(ctx))
        run_id, status = queue_manual(conn, name, utcnow())
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
            row = manual.wait_for_run(conn, run_id)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; run {run_id} of {name} goes on in the daemon: "
                f"`jobctl runs show {run_id}` shows it, `jobctl runs {name} --follow` follows it"
            ) from None
    else:
        env = fire_environment(env_file)
        result = manual.run_now(
            conn,
            name,
            env=env,
            report=_report_attempt,
            on_wait=lambda: click.echo(f"waiting for the run of {name} in flight", err=True),
        )
        if isinstance(result, int):
            row = get_run(conn, result)
            if as_json:
                click.echo(to_json(run_to_dict(row)))
            raise Failed(f"run {result} of {name} skipped: a run is in flight (overlap skip)")
        row = get_run(conn, result.claim.run_id)
    _print_run_result(row, as_json)
    if row["status"] != "succeeded":
        sys.exit(1)


def _print_run_result(row: Any, as_json: bool) -> None:
    from jobctl.output import to_json, visible
    from jobctl.runs import run_to_dict

    if as_json:
        click.echo(to_json(run_to_dict(row)))
        return
    if row["output"]:
        output = visible(row["output"])
        click.echo(output, nl=not output.endswith("\n"))
