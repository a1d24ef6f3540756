"""`jobctl daemon`: start the daemon (foreground, detached, or as a systemd unit)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from jobctl.cli.shared import cli, db_option, db_path
from jobctl.errors import Failed, InvalidInput


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
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME",
    help="Fire only the jobs on this queue (repeat for several; default: every queue).",
)
@click.option(
    "--lease",
    default="30s",
    show_default=True,
    metavar="D",
    help="PostgreSQL: without a heartbeat for this long the daemon is dead and the others "
    "take over its runs.",
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
    help="Print a systemd unit that runs the daemon with the other options given, and exit "
    "(without PrivateTmp=yes when a file it uses is in /tmp).",
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
    queues: tuple[str, ...],
    lease: str,
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
    commands within a second. One daemon per SQLite database; on PostgreSQL several share
    one, each firing the jobs on its --queue. SIGHUP reopens the log file and re-reads the
    env file.

    \b
    Examples:
      jobctl daemon
      jobctl daemon --listen 127.0.0.1:8787
      jobctl daemon --detach --env-file ~/.config/jobctl/secrets.env
      jobctl daemon --systemd-unit --user > ~/.config/systemd/user/jobctl.service
    """
    if ctx.invoked_subcommand is not None:
        return
    from jobctl.daemon import Daemon
    from jobctl.daemon_config import DaemonConfig
    from jobctl.jobs import validate_queue
    from jobctl.paths import PostgresUrl, default_log_path
    from jobctl.secrets import fire_environment
    from jobctl.service import LogConfig
    from jobctl.service import systemd_unit as unit_text
    from jobctl.timeutil import parse_duration

    path = db_path(ctx)
    if systemd_unit and isinstance(path, PostgresUrl) and str(path) != path.url:
        raise InvalidInput(
            "--systemd-unit would write the database password into the unit: leave it out "
            "of the URL and keep it in ~/.pgpass (or PGPASSFILE)"
        )
    if systemd_unit:
        from jobctl.service import paths_in_tmp

        args = _unit_daemon_args(ctx)
        in_tmp = paths_in_tmp(path, args)
        if in_tmp:
            click.echo(
                f"jobctl: warning: {', '.join(in_tmp)} in a temporary directory: the unit "
                "leaves out PrivateTmp=yes so that the service sees it (files there may not "
                "survive a reboot; a permanent place is better)",
                err=True,
            )
        click.echo(unit_text(path, args, user=user_unit), nl=False)
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
        queues=tuple(dict.fromkeys(validate_queue(queue) for queue in queues)),
        lease=_lease_seconds(lease),
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
    if isinstance(path, Path):
        from jobctl.store.sqlite import require_jobctl_file, require_writable

        require_writable(path)  # one line, before the lock file or the log is touched
        require_jobctl_file(path)  # another program's file gets no lock file beside it
    if not detach:
        ctx.exit(Daemon(config).run())
    _detach(config, pidfile)


def _lease_seconds(text: str) -> float:
    from jobctl.timeutil import parse_duration

    seconds = parse_duration(text, what="--lease").total_seconds()
    if seconds < 2:
        raise InvalidInput(f"invalid --lease {text!r}: at least 2s (the heartbeat beats every 1s)")
    return seconds


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
    from jobctl.store import open_store

    open_store(config.db_path).close()  # creates/migrates, and fails here if it cannot
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
