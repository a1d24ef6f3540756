"""The command line: parse, call one core function, render. The only package importing click."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from jobctl import __version__
from jobctl.errors import InvalidInput, JobctlError

F = TypeVar("F", bound=Callable[..., Any])

DB_KEY = "jobctl.db"


def _remember_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # ctx.meta is shared by the whole context chain, so a subcommand's --db (parsed later)
    # wins over the group's.
    if value is not None:
        ctx.meta[DB_KEY] = value


def db_option(func: F) -> F:
    return click.option(
        "--db",
        metavar="PATH",
        expose_value=False,
        is_eager=True,
        callback=_remember_db,
        help="SQLite database file (env JOBCTL_DB; default: jobctl.db in the user data dir).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")(func)


def wide_option(func: F) -> F:
    return click.option(
        "--wide", "-w", is_flag=True, help="Show everything in full, however wide the lines."
    )(func)


def db_path(ctx: click.Context) -> Any:
    from jobctl.paths import resolve_db_path

    return resolve_db_path(ctx.meta.get(DB_KEY))


def open_db(ctx: click.Context, *, tidy: bool = False) -> sqlite3.Connection:
    """The database; `tidy` first marks runs of dead processes interrupted (for readers)."""
    from jobctl.db import connect

    conn = connect(db_path(ctx))
    ctx.call_on_close(conn.close)
    if tidy:
        from jobctl.runs import tidy_orphans
        from jobctl.timeutil import utcnow

        tidy_orphans(conn, utcnow())
    return conn


COMMAND_ORDER = (
    "add",
    "edit",
    "rm",
    "list",
    "show",
    "pause",
    "resume",
    "next",
    "run",
    "runs",
    "status",
    "daemon",
    "agent",
    "hook",
    "export",
    "apply",
    "import",
    "doctor",
    "backup",
    "restore",
)


class ReportedError(click.ClickException):
    """A JobctlError on its way out through click: one line, the contract's exit code."""

    def __init__(self, error: JobctlError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"jobctl: {self.format_message()}", err=True)


def report_errors(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    try:
        return invoke(ctx)
    except JobctlError as exc:
        raise ReportedError(exc) from None
    except click.exceptions.NoArgsIsHelpError:
        raise  # `jobctl agent` alone: click prints the group's help
    except click.UsageError as exc:
        # One line, like every other error, instead of click's usage block.
        where = exc.ctx.command_path if exc.ctx else "jobctl"
        message = f"{exc.format_message()} (see `{where} --help`)"
        raise ReportedError(InvalidInput(message)) from None
    except sqlite3.Error as exc:
        raise ReportedError(JobctlError(f"database error: {exc}")) from None
    except OverflowError:
        # A date or number beyond what the calendar and SQLite hold (year 9999, 2**63).
        raise ReportedError(
            InvalidInput("a number or time in the arguments is out of range")
        ) from None
    except UnicodeEncodeError:
        raise ReportedError(InvalidInput("the arguments hold bytes that are not UTF-8")) from None


class JobctlGroup(click.Group):
    """Turns JobctlError into its exit code; lists commands in the order of the manual."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + sorted(set(self.commands) - set(known))

    def invoke(self, ctx: click.Context) -> Any:
        return report_errors(super().invoke, ctx)


@click.group(cls=JobctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="jobctl", message="%(prog)s %(version)s")
@db_option
def cli() -> None:
    """jobctl: schedule HTTP requests, agent prompts and commands, and see every run.

    \b
    Examples:
      jobctl add ping --url https://example.com/health --every 5m
      jobctl list
    """


def main() -> None:
    """Entry point for the console script and `python -m jobctl`."""
    try:
        cli.main(prog_name="jobctl")
    except BrokenPipeError:
        # The reader went away (`jobctl runs | head -1`): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


# Registering the commands: each module adds its own to `cli`,
from jobctl.cli import (  # noqa: E402
    agent_commands,  # noqa: F401
    file_commands,  # noqa: F401
    hook_commands,  # noqa: F401
    import_commands,  # noqa: F401
    job_commands,  # noqa: F401
    ops_commands,  # noqa: F401
    run_commands,  # noqa: F401
    runs_commands,  # noqa: F401
)
