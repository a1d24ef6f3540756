"""What every command shares: the root group `jobctl` with its error reporting (a JobctlError
becomes one line on stderr and its exit code), the --db/--json/--wide options, and opening
the database. The command modules register themselves on `cli`; jobctl.cli imports them all."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jobctl import __version__
from jobctl.errors import Interrupted, InvalidInput, JobctlError

if TYPE_CHECKING:
    from jobctl.paths import DbLocation
    from jobctl.store import Store
    from jobctl.store.sqlite.listing import JobList

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
        help="SQLite database file or postgresql:// URL (env JOBCTL_DB; default: jobctl.db in the user data dir).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")(func)


def wide_option(func: F) -> F:
    return click.option(
        "--wide", "-w", is_flag=True, help="Show everything in full, however wide the lines."
    )(func)


def db_path(ctx: click.Context) -> DbLocation:
    from jobctl.paths import resolve_db_path

    return resolve_db_path(ctx.meta.get(DB_KEY))


def db_file(ctx: click.Context, command: str) -> Path:
    """The SQLite file, for a command that works on the file itself (exit 2 on PostgreSQL)."""
    from jobctl.paths import PostgresUrl

    location = db_path(ctx)
    if isinstance(location, PostgresUrl):
        raise InvalidInput(
            f"{command} copies an SQLite file: use pg_dump/pg_restore for PostgreSQL"
        )
    return location


def db_is_explicit(ctx: click.Context) -> bool:
    """`--db` or JOBCTL_DB named the database (a path that must exist for reading)."""
    return bool(ctx.meta.get(DB_KEY) or os.environ.get("JOBCTL_DB"))


def open_db(ctx: click.Context) -> Store:
    """The database for a command that writes: created and migrated if need be."""
    from jobctl.store import open_store

    store = open_store(db_path(ctx))
    ctx.call_on_close(store.close)
    return store


def read_db(ctx: click.Context, *, tidy: bool = False) -> Store:
    """The database for a command that only reads; never created here.

    A named database (`--db`, JOBCTL_DB) that does not exist is not found (exit 3); the
    default one that does not exist yet reads as empty. One this process may not write is
    read read-only, and then `tidy` (mark runs of dead processes interrupted) is skipped.
    """
    from jobctl.store import empty_store, open_store_for_reading

    path = db_path(ctx)
    store: Store
    if isinstance(path, Path) and not path.exists() and not db_is_explicit(ctx):
        store = empty_store()
    else:
        store = open_store_for_reading(path)
    ctx.call_on_close(store.close)
    if tidy and store.writable:
        from jobctl.runs import tidy_orphans
        from jobctl.timeutil import utcnow

        tidy_orphans(store, utcnow())
    return store


def read_listing(ctx: click.Context) -> JobList | None:
    """read_db's SQLite database opened for `list` alone, without the store's operations
    and the models. None where read_db reads something else: PostgreSQL, or the default
    database not created yet. Runs of dead processes are not tidied here: the caller does
    it when some run is `running`."""
    from jobctl.store.sqlite.listing import open_job_list

    path = db_path(ctx)
    if not isinstance(path, Path) or (not path.exists() and not db_is_explicit(ctx)):
        return None
    listing = open_job_list(path)
    ctx.call_on_close(listing.close)
    return listing


def require_db(ctx: click.Context) -> None:
    """Exit 3 when a named database does not exist (for readers that open it themselves)."""
    from jobctl.errors import NotFound

    path = db_path(ctx)
    if db_is_explicit(ctx) and isinstance(path, Path) and not path.exists():
        raise NotFound(f"no database at {path}")


def counted(count: int, noun: str) -> str:
    """`1 job`, `2 jobs`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


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
    "events",
    "daemon",
    "agent",
    "hook",
    "api",
    "dashboard",
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
        from jobctl.output import visible

        click.echo(f"jobctl: {visible(self.format_message())}", err=True)


def _usage_error(exc: click.UsageError) -> ReportedError:
    """One line, like every other error, instead of click's usage block."""
    where = (
        exc.ctx or _parsing_context(exc) or click.Context(cli, info_name="jobctl")
    ).command_path
    return ReportedError(InvalidInput(f"{exc.format_message()} (see `{where} --help`)"))


def _parsing_context(exc: BaseException) -> click.Context | None:
    """The context of the command whose arguments failed to parse.

    click raises some usage errors (an option without its value) from its parser without
    a context; the parser that raised holds the right one.
    """
    found = None
    for frame, _line in traceback.walk_tb(exc.__traceback__):
        parser_ctx = getattr(frame.f_locals.get("self"), "ctx", None)
        if isinstance(parser_ctx, click.Context):
            found = parser_ctx
    return found


def report_errors(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    try:
        return invoke(ctx)
    except JobctlError as exc:
        raise ReportedError(exc) from None
    except click.exceptions.NoArgsIsHelpError:
        raise  # `jobctl agent` alone: click prints the group's help
    except click.UsageError as exc:
        raise _usage_error(exc) from None
    except KeyboardInterrupt:
        raise ReportedError(Interrupted("interrupted")) from None
    except click.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C at a prompt
            raise ReportedError(Interrupted("interrupted")) from None
        raise
    except OverflowError:
        # A date or number beyond what the calendar and SQLite hold (year 9999, 2**63).
        raise ReportedError(
            InvalidInput("a number or time in the arguments is out of range")
        ) from None
    except UnicodeEncodeError:
        raise ReportedError(InvalidInput("the arguments hold bytes that are not UTF-8")) from None
    except Exception as exc:
        # Imported here: the store (and every model) is not loaded for `--version`, help or
        # completion, and a database error can only come once it was.
        from jobctl.store import StoreError

        if not isinstance(exc, StoreError):
            raise
        raise ReportedError(JobctlError(f"database error: {exc}")) from None


class JobctlGroup(click.Group):
    """Turns JobctlError into its exit code; lists commands in the order of the manual."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + sorted(set(self.commands) - set(known))

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The group's own options (`jobctl --db` without a value) are parsed here, before
        # `invoke`.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _usage_error(exc) from None

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
