"""`jobctl runs`: list (and --follow), show, prune, clear."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from jobctl.cli.complete import (
    complete_job_names,
    complete_run_ids,
    complete_statuses,
    complete_triggers,
)
from jobctl.cli.progress import progress, quiet_option
from jobctl.cli.run_views import FollowTable, print_runs, render_run
from jobctl.cli.shared import cli, counted, db_option, json_option, open_db, read_db, wide_option
from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from jobctl.history import RunFilter
    from jobctl.models import Run, RunStatus
    from jobctl.store import Store

FOLLOW_POLL = 0.5


def _now() -> datetime:
    from jobctl.timeutil import utcnow

    return utcnow()


class RunsGroup(click.Group):
    """`runs [NAME] [OPTIONS]` lists; `runs show|prune|clear ...` are subcommands.

    Arguments that do not start with a subcommand's name go to `list` (`runs backup
    --limit 5`, `runs --status failed`, `runs` alone); `runs --help` shows list's options.
    """

    default_command = "list"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        position = self._after_own_options(ctx, args)
        completing_here = ctx.resilient_parsing and position == len(args)
        if position is not None and position <= len(args) and not completing_here:
            if position == len(args) or args[position] not in self.commands:
                args.insert(position, self.default_command)
        return super().parse_args(ctx, args)

    def _after_own_options(self, ctx: click.Context, args: list[str]) -> int | None:
        """Where the group's own options (`--db X`) end; None if `--help` is among them."""
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                for name in (*param.opts, *param.secondary_opts):
                    takes_value[name] = not param.is_flag
        position = 0
        while position < len(args):
            name, has_equals, _ = args[position].partition("=")
            if name not in takes_value:
                return position
            if name in ctx.help_option_names:
                return None
            position += 2 if takes_value[name] and not has_equals else 1
        return position  # past the end when the last option lacks its value

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[NAME] [OPTIONS] | COMMAND [ARGS]..."]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list options with the group's own, then the subcommands."""
        records = []
        seen: set[str] = set()
        listing = self.commands[self.default_command]
        for param in [*listing.get_params(ctx), *self.get_params(ctx)]:
            record = param.get_help_record(ctx)
            if record is None or not isinstance(param, click.Option) or record[0] in seen:
                continue
            seen.add(record[0])
            records.append(record)
        with formatter.section("Options"):
            formatter.write_dl(records)
        self.format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """`runs <TAB>`: the subcommands, and what `runs list` takes (job names, options)."""
        results = super().shell_complete(ctx, incomplete)
        listing = self.commands[self.default_command]
        with listing.make_context(
            self.default_command, [], parent=ctx, resilient_parsing=True
        ) as list_ctx:
            known = {item.value for item in results}
            if incomplete.startswith("-"):
                extra = listing.shell_complete(list_ctx, incomplete)
            else:
                name = next(p for p in listing.params if isinstance(p, click.Argument))
                extra = name.shell_complete(list_ctx, incomplete)
        return results + [item for item in extra if item.value not in known]


@cli.group(cls=RunsGroup)
@db_option
def runs() -> None:
    """Run history: `jobctl runs [NAME]` lists; list, show, cancel, rerun, prune and
    clear are subcommands (so never job names).

    \b
    Examples:
      jobctl runs
      jobctl runs backup --status failed --since 24h
      jobctl runs show 42
    """


@runs.command(name="list")
@click.argument("name", required=False, shell_complete=complete_job_names)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="S",
    shell_complete=complete_statuses,
    help="Only runs with this status; repeat for more.",
)
@click.option(
    "--trigger",
    "triggers",
    multiple=True,
    metavar="T",
    shell_complete=complete_triggers,
    help="Only runs started this way (schedule, manual, retry, ...).",
)
@click.option("--adhoc", is_flag=True, help="Only ad hoc runs (`jobctl run --exec ...`: no job).")
@click.option("--since", metavar="D|TIME", help="Only runs since: 24h ago, or a time.")
@click.option("--until", metavar="D|TIME", help="Only runs until: 1h ago, or a time.")
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="How many runs at most (0: all).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing runs as they start and end.")
@wide_option
@db_option
@json_option
@click.pass_context
def runs_list(
    ctx: click.Context,
    name: str | None,
    statuses: tuple[str, ...],
    triggers: tuple[str, ...],
    adhoc: bool,
    since: str | None,
    until: str | None,
    limit: int,
    fmt: str,
    follow: bool,
    wide: bool,
    as_json: bool,
) -> None:
    """List runs, newest first.

    On a terminal the table fits its width: errors are cut short, and STARTED, TRIGGER,
    CODE and DURATION make way if needed; --wide, or output to a pipe, shows everything.

    \b
    Examples:
      jobctl runs backup --limit 5
      jobctl runs --status failed --status timed_out --format csv > failures.csv
      jobctl runs --follow
      jobctl runs --adhoc
    """
    from jobctl.history import RunFilter, list_runs, parse_moment, validate_filter_values
    from jobctl.output import output_width

    validate_filter_values(statuses, triggers)
    if adhoc and name is not None:
        raise InvalidInput("--adhoc lists the runs that have no job: give it without NAME")
    now = _now()
    where = RunFilter(
        job=name,
        statuses=statuses,
        triggers=triggers,
        adhoc=adhoc,
        limit=limit,
        since=parse_moment(since, now, what="--since") if since else None,
        until=parse_moment(until, now, what="--until") if until else None,
    )
    if as_json:
        fmt = "jsonl" if follow else "json"
    store = read_db(ctx, tidy=True)
    runs = list_runs(store, where)
    if follow:
        _follow(store, where, runs, fmt, output_width(wide=wide))
        return
    print_runs(runs, fmt, now, output_width(wide=wide))


def _follow(store: Store, where: RunFilter, runs: list[Run], fmt: str, width: int | None) -> None:
    """Print what exists (oldest first), then new runs and status changes until Ctrl-C or
    SIGTERM: its normal end (exit 0). The signals only set a flag that the loop checks, so
    that one arriving anywhere (or inherited as ignored) cannot leave it running."""
    from jobctl.follow import StopSignals
    from jobctl.history import list_runs

    shown: dict[int, RunStatus] = {}
    printer = FollowTable(store, width) if fmt == "table" else None

    def emit(batch: list[Run]) -> None:
        fresh = [run for run in batch if shown.get(run.id) != run.status]
        for run in fresh:
            shown[run.id] = run.status
        if not fresh:
            return
        if printer is not None:
            printer.print(fresh, _now())
        else:
            print_runs(fresh, fmt if fmt != "json" else "jsonl", _now(), width)
        sys.stdout.flush()

    with StopSignals() as stop:
        emit(list(reversed(runs)))
        last_id = max((run.id for run in runs), default=store.newest_run_id())
        where.limit = 0
        while not stop.wait(FOLLOW_POLL):
            where.after_id = last_id
            new = list(reversed(list_runs(store, where)))
            pending = [run_id for run_id, status in shown.items() if status.in_flight]
            emit(store.runs_by_id(pending) + new)
            if new:
                last_id = max(run.id for run in new)


# `-1` reaches the command as a run id (not click's "No such option"), to be refused in our words
@runs.command(name="show", context_settings={"ignore_unknown_options": True})
@click.argument("run_id", metavar="RUN_ID", shell_complete=complete_run_ids)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print its output as it comes until it ends (RUN_ID may then be a job NAME).",
)
@wide_option
@db_option
@json_option
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, follow: bool, wide: bool, as_json: bool) -> None:
    """Everything about one run: request sent, response, output, error, timings.

    On a terminal, long values wrap onto indented lines within its width (--wide: never).

    --follow prints what the run has produced so far, then each new piece of output as it
    comes, then its outcome line (on stderr), and exits 0 if it succeeded, 1 if not. Given
    a job NAME it follows the job's run in flight, or waits for its next one, and goes on
    through its retries. With --json: one object per piece of output, then the run.

    \b
    Examples:
      jobctl runs show 42
      jobctl runs show 42 --json | jq -r .output
      jobctl runs show --follow backup
      jobctl runs show --follow "$(jobctl run backup --queue --json | jq .run)"
    """
    from jobctl.output import output_width, to_json, visible
    from jobctl.runs import get_run, run_to_dict

    if follow:
        from jobctl.cli.run_follow import follow_command

        digits = run_id.isascii() and run_id.isdigit()
        follow_command(ctx, parse_run_id(run_id) if digits else None, run_id, as_json)
        return

    data = run_to_dict(get_run(read_db(ctx, tidy=True), parse_run_id(run_id)), full=True)
    if as_json:
        click.echo(to_json(data))
        return
    click.echo(visible(render_run(data, output_width(wide=wide))))


def parse_run_id(text: str) -> int:
    """A run id as typed: a positive whole number (InvalidInput, exit 2, if not)."""
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**63:
        return int(text)
    raise InvalidInput(f"invalid run id {text!r}: run ids are positive whole numbers")


@runs.command(name="prune")
@click.argument("name", required=False, shell_complete=complete_job_names)
@click.option("--older-than", metavar="D", help="Remove runs older than D (e.g. 30d).")
@click.option(
    "--keep", type=click.IntRange(0), metavar="N", help="Keep only the newest N runs of each job."
)
@quiet_option
@db_option
@json_option
@click.pass_context
def runs_prune(
    ctx: click.Context,
    name: str | None,
    older_than: str | None,
    keep: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Remove old runs; without options each job's --keep and --keep-for apply.

    Runs in flight are never removed; the lifetime counters stay as they are. Without NAME
    the whole history is walked once in id order, with a progress bar on a terminal.

    \b
    Examples:
      jobctl runs prune --older-than 30d
      jobctl runs prune backup --keep 100
    """
    from jobctl.history import prune_runs
    from jobctl.output import to_json
    from jobctl.timeutil import parse_duration

    age = parse_duration(older_than, what="--older-than") if older_than else None
    store = open_db(ctx)
    if name:
        removed = sum(prune_runs(store, _now(), job=name, keep=keep, older_than=age))
    else:
        removed = _prune_all(store, keep, age, quiet)
    click.echo(to_json({"removed": removed}) if as_json else f"removed {counted(removed, 'run')}")


def _prune_all(store: Store, keep: int | None, age: timedelta | None, quiet: bool) -> int:
    from jobctl.pruning import prune_all

    span = store.run_id_span()
    if span is None:
        return 0
    low, high = span
    removed = 0
    with progress("pruning runs", quiet=quiet, length=high - low + 1) as bar:
        for batch in prune_all(store, _now(), keep=keep, older_than=age):
            removed += batch.removed
            bar.to(batch.last_id - low + 1, f"{removed:,} removed")
        bar.to(high - low + 1, f"{removed:,} removed")  # the rest is kept: walked past
    return removed


@runs.command(name="clear")
@click.argument("name", shell_complete=complete_job_names)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@db_option
@json_option
@click.pass_context
def runs_clear(ctx: click.Context, name: str, yes: bool, as_json: bool) -> None:
    """Remove every run of a job and reset its counters.

    \b
    Examples:
      jobctl runs clear backup --yes
    """
    from jobctl.catalog import get_job
    from jobctl.history import clear_runs
    from jobctl.output import to_json

    store = open_db(ctx)
    get_job(store, name)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("runs clear removes history: confirm with --yes")
        click.confirm(f"Remove every run of {name} and reset its counters?", abort=True)
    removed = clear_runs(store, name)
    click.echo(
        to_json({"removed": removed}) if as_json else f"removed {counted(removed, 'run')} of {name}"
    )
