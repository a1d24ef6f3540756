"""`jobctl runs` (list, show, prune, clear, --follow) and `jobctl status`."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli import cli, counted, db_option, db_path, json_option, open_db, read_db, wide_option
from jobctl.cli.complete import (
    complete_job_names,
    complete_run_ids,
    complete_statuses,
    complete_triggers,
)
from jobctl.errors import DaemonUnavailable, InvalidInput

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

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
    """Run history: `jobctl runs [NAME]` lists; show, prune and clear are subcommands.

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
    """
    from jobctl.history import RunFilter, list_runs, parse_moment, validate_filter_values
    from jobctl.output import output_width

    validate_filter_values(statuses, triggers)
    now = _now()
    where = RunFilter(
        job=name,
        statuses=statuses,
        triggers=triggers,
        limit=limit,
        since=parse_moment(since, now, what="--since") if since else None,
        until=parse_moment(until, now, what="--until") if until else None,
    )
    if as_json:
        fmt = "jsonl" if follow else "json"
    conn = read_db(ctx, tidy=True).conn
    rows = list_runs(conn, where)
    if follow:
        _follow(conn, where, rows, fmt, output_width(wide=wide))
        return
    _print_runs(rows, fmt, now, output_width(wide=wide))


def _print_runs(rows: list[Any], fmt: str, now: datetime, width: int | None) -> None:
    from jobctl.output import to_json
    from jobctl.runs import run_to_dict

    if fmt == "json":
        click.echo(to_json([run_to_dict(row) for row in rows]))
    elif fmt == "jsonl":
        from jobctl.output import to_json_line

        for row in rows:
            click.echo(to_json_line(run_to_dict(row)))
    elif fmt == "csv":
        _print_csv(rows)
    elif not rows:
        click.echo("no runs match", err=True)
    else:
        from jobctl.output import table, use_colour

        colour = use_colour()
        click.echo(table([_run_cells(row, now, colour) for row in rows], _columns(), width=width))


def _columns() -> list[Any]:
    """The `runs` table: ERROR is cut to fit; STARTED, TRIGGER, CODE, DURATION make way."""
    from jobctl.output import Column

    return [
        Column("ID"),
        Column("JOB"),
        Column("TRIGGER", drop=2),
        Column("SCHEDULED"),
        Column("STARTED", drop=1),
        Column("DURATION", drop=4),
        Column("STATUS"),
        Column("CODE", drop=3),
        Column("ERROR", shrink=True),
    ]


def _print_csv(rows: list[Any]) -> None:
    import csv

    from jobctl.runs import run_to_dict

    fields = [
        "id",
        "job",
        "trigger",
        "status",
        "attempt",
        "scheduled_for",
        "started_at",
        "finished_at",
        "duration_ms",
        "http_status",
        "exit_code",
        "error",
    ]
    writer = csv.DictWriter(
        sys.stdout, fieldnames=fields, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(run_to_dict(row))


def _run_cells(row: Any, now: datetime, colour: bool) -> list[str]:
    from jobctl.output import colour_status
    from jobctl.timeutil import format_duration, from_db, humanize_delta

    scheduled = from_db(row["scheduled_for"]).astimezone().strftime("%m-%d %H:%M:%S")
    started = humanize_delta(from_db(row["started_at"]), now) if row["started_at"] else "-"
    duration = format_duration(row["duration_ms"] / 1000) if row["duration_ms"] is not None else "-"
    code = (
        str(row["http_status"])
        if row["http_status"] is not None
        else str(row["exit_code"])
        if row["exit_code"] is not None
        else "-"
    )
    error = " ".join((row["error"] or "").split())
    return [
        str(row["id"]),
        row["job"],
        row["trigger"],
        scheduled,
        started,
        duration,
        colour_status(row["status"], colour),
        code,
        error or "-",
    ]


def _follow(conn: Any, where: Any, rows: list[Any], fmt: str, width: int | None) -> None:
    """Print what exists (oldest first), then new runs and status changes until Ctrl-C."""
    from jobctl.history import runs_by_id

    shown: dict[int, str] = {}
    printer = _FollowTable(conn, width) if fmt == "table" else None

    def emit(batch: list[Any]) -> None:
        fresh = [row for row in batch if shown.get(row["id"]) != row["status"]]
        for row in fresh:
            shown[row["id"]] = row["status"]
        if not fresh:
            return
        if printer is not None:
            printer.print(fresh)
        else:
            _print_runs(fresh, fmt if fmt != "json" else "jsonl", _now(), width)
        sys.stdout.flush()

    try:  # following stops only when interrupted: that is its normal end (exit 0)
        emit(list(reversed(rows)))
        last_id = max((row["id"] for row in rows), default=_max_run_id(conn))
        where.limit = 0
        while True:
            time.sleep(FOLLOW_POLL)
            where.after_id = last_id
            new = list(reversed(_list(conn, where)))
            pending = [
                run_id for run_id, status in shown.items() if status in ("running", "queued")
            ]
            emit(runs_by_id(conn, pending) + new)
            if new:
                last_id = max(row["id"] for row in new)
    except KeyboardInterrupt:
        return


class _FollowTable:
    """The `runs --follow` table: one header, and column widths fixed when it is printed
    (wide enough for the longest job name and the ids to come), so rows stay aligned."""

    def __init__(self, conn: Any, width: int | None) -> None:
        self.conn = conn
        self.width = width
        self.layout: Any = None

    def print(self, rows: list[Any]) -> None:
        from jobctl.output import table_layout, use_colour

        colour = use_colour()
        cells = [_run_cells(row, _now(), colour) for row in rows]
        if self.layout is None:
            longest_name = self.conn.execute("SELECT coalesce(max(length(name)), 0) FROM jobs")
            widest = [
                "9" * (len(str(_max_run_id(self.conn))) + 1),
                "x" * longest_name.fetchone()[0],
                "schedule",
                "12-31 23:59:59",
                "59m ago",
                "59m59s",
                "interrupted",
                "999",
                # ERROR takes the rest of the line on a terminal.
                "x" * (self.width or 0),
            ]
            self.layout = table_layout([*cells, widest], _columns(), self.width)
            click.echo(self.layout.render_header())
        for row in cells:
            click.echo(self.layout.render(row))


def _list(conn: Any, where: Any) -> list[Any]:
    from jobctl.history import list_runs

    return list_runs(conn, where)


def _max_run_id(conn: Any) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0])


@runs.command(name="show")
@click.argument("run_id", type=click.IntRange(1, 2**63 - 1), shell_complete=complete_run_ids)
@wide_option
@db_option
@json_option
@click.pass_context
def runs_show(ctx: click.Context, run_id: int, wide: bool, as_json: bool) -> None:
    """Everything about one run: request sent, response, output, error, timings.

    On a terminal, long values wrap onto indented lines within its width (--wide: never).

    \b
    Examples:
      jobctl runs show 42
      jobctl runs show 42 --json | jq -r .output
    """
    from jobctl.output import output_width, to_json, visible
    from jobctl.runs import get_run, run_to_dict

    data = run_to_dict(get_run(read_db(ctx, tidy=True).conn, run_id), full=True)
    if as_json:
        click.echo(to_json(data))
        return
    click.echo(visible(_render_run(data, output_width(wide=wide))))


def _render_run(data: dict[str, Any], width: int | None = None) -> str:
    from jobctl.output import key_values
    from jobctl.timeutil import format_duration

    def when(text: str | None) -> str | None:
        if not text:
            return None
        from jobctl.timeutil import local_text

        return local_text(datetime.fromisoformat(text.replace("Z", "+00:00")))

    details = data.get("details") or {}
    pairs: list[tuple[str, Any]] = [
        ("run", data["id"]),
        ("job", data["job"]),
        ("trigger", data["trigger"]),
        ("status", data["status"]),
        ("attempt", data["attempt"]),
        ("scheduled for", when(data["scheduled_for"])),
        ("started", when(data["started_at"])),
        ("finished", when(data["finished_at"])),
        (
            "duration",
            format_duration(data["duration_ms"] / 1000)
            if data["duration_ms"] is not None
            else None,
        ),
        ("lateness", f"{data['lateness_ms']} ms" if data.get("lateness_ms") is not None else None),
        ("http status", data["http_status"]),
        ("exit code", data["exit_code"]),
        ("error", data["error"]),
    ]
    if data["status"] == "missed":
        pairs += [
            ("missed slots", data.get("missed_count")),
            ("missed until", when(data.get("missed_until"))),
        ]
    for key in ("agent", "model", "finish_reason"):
        if key in details:
            pairs.append((key.replace("_", " "), details[key]))
    if "usage" in details:
        pairs.append(("tokens", _usage_text(details["usage"])))
    if details.get("latency_ms") is not None:
        pairs.append(("latency", f"{details['latency_ms']} ms"))
    if "delivery" in details:
        pairs.append(("delivery", _delivery_text(details["delivery"])))
    text = key_values(pairs, width=width)
    snapshot = data.get("snapshot")
    if snapshot:
        text += "\n\nrequest:\n" + _indent_mapping(snapshot)
    if details.get("response_headers"):
        text += "\n\nresponse headers:\n" + _indent_mapping(details["response_headers"])
    if data["output"]:
        text += "\n\noutput:\n" + data["output"].rstrip("\n")
    return text


def _usage_text(usage: Any) -> Any:
    """`11 in + 7 out = 18`, as `agent test` prints the token counts an agent reported."""
    if not isinstance(usage, dict):
        return usage
    if usage.get("total_tokens") is None:
        return "unknown"

    def count(key: str) -> str:
        return "?" if usage.get(key) is None else str(usage[key])

    return (
        f"{count('prompt_tokens')} in + {count('completion_tokens')} out = {count('total_tokens')}"
    )


def _delivery_text(delivery: Any) -> Any:
    """`delivered to URL (HTTP 200)` or `failed to deliver to URL: reason`."""
    if not isinstance(delivery, dict):
        return delivery
    url = delivery.get("url") or "?"
    status = f" (HTTP {delivery['status']})" if delivery.get("status") is not None else ""
    if delivery.get("ok"):
        return f"delivered to {url}{status}"
    reason = f": {delivery['error']}" if delivery.get("error") else ""
    return f"failed to deliver to {url}{status}{reason}"


def _indent_mapping(mapping: dict[str, Any]) -> str:
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines.extend(f"    {k}: {v}" for k, v in value.items())
        else:
            lines.append(f"  {key}: {value if value is not None else '-'}")
    return "\n".join(lines)


@runs.command(name="prune")
@click.argument("name", required=False, shell_complete=complete_job_names)
@click.option("--older-than", metavar="D", help="Remove runs older than D (e.g. 30d).")
@click.option(
    "--keep", type=click.IntRange(0), metavar="N", help="Keep only the newest N runs of each job."
)
@db_option
@json_option
@click.pass_context
def runs_prune(
    ctx: click.Context, name: str | None, older_than: str | None, keep: int | None, as_json: bool
) -> None:
    """Remove old runs; without options each job's --keep and --keep-for apply.

    Runs in flight are never removed; the lifetime counters stay as they are.

    \b
    Examples:
      jobctl runs prune --older-than 30d
      jobctl runs prune backup --keep 100
    """
    from jobctl.history import prune_runs
    from jobctl.output import to_json
    from jobctl.timeutil import parse_duration

    age = parse_duration(older_than, what="--older-than") if older_than else None
    removed = sum(prune_runs(open_db(ctx).conn, _now(), job=name, keep=keep, older_than=age))
    click.echo(to_json({"removed": removed}) if as_json else f"removed {counted(removed, 'run')}")


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
    from jobctl.history import clear_runs
    from jobctl.jobs import get_job
    from jobctl.output import to_json

    conn = open_db(ctx).conn
    get_job(conn, name)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("runs clear removes history: confirm with --yes")
        click.confirm(f"Remove every run of {name} and reset its counters?", abort=True)
    removed = clear_runs(conn, name)
    click.echo(
        to_json({"removed": removed}) if as_json else f"removed {counted(removed, 'run')} of {name}"
    )


@cli.command()
@click.option(
    "--check",
    is_flag=True,
    help="Exit 4 when the daemon is not running or cannot work (a full disk, a stuck loop).",
)
@db_option
@json_option
@click.pass_context
def status(ctx: click.Context, check: bool, as_json: bool) -> None:
    """Daemon liveness, jobs by state, runs of the last 24h, failing jobs, the next fires.

    The 24-hour counts are runs that finished in the window, by status (a long run started
    before it counts too); the jobs with failures (failed, timed out, interrupted) are named
    with their count, and jobs that jobctl paused itself with the reason.

    \b
    Examples:
      jobctl status
      jobctl status --check || systemctl --user restart jobctl
    """
    from jobctl.history import status_summary
    from jobctl.liveness import daemon_problem, daemon_running
    from jobctl.output import to_json

    conn = read_db(ctx, tidy=True).conn
    now = _now()
    summary = status_summary(conn, now, daemon_running=daemon_running(conn, db_path(ctx)))
    problem = daemon_problem(conn, db_path(ctx), now)
    summary["daemon"]["problem"] = problem
    if as_json:
        click.echo(to_json(summary))
    else:
        from jobctl.output import output_width

        click.echo(_render_status(summary, now, output_width()))
    if check and not summary["daemon"]["running"]:
        raise DaemonUnavailable("the daemon is not running")
    if check and problem:
        raise DaemonUnavailable(f"the daemon is not working: {problem}")


def _count_texts(counts: dict[str, int], missed_slots: int) -> list[str]:
    """`3 succeeded`, `2 timed out`, `1 missed (4 slots)`: the statuses that occurred."""
    texts = []
    for status, count in counts.items():
        if count:
            text = f"{count} {status.replace('_', ' ')}"
            if status == "missed" and missed_slots != count:
                text += f" ({missed_slots} slots)"
            texts.append(text)
    return texts


def _render_status(summary: dict[str, Any], now: datetime, width: int | None = None) -> str:
    from jobctl.output import key_values
    from jobctl.timeutil import humanize_delta, local_text

    def moment(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None

    daemon = summary["daemon"]
    if daemon["running"]:
        started = moment(daemon["started_at"])
        tick = moment(daemon["last_tick_at"])
        state = (
            f"running (pid {daemon['pid']} on {daemon['host']}, up "
            f"{humanize_delta(started, now).removesuffix(' ago') if started else '?'}, "
            f"last tick {humanize_delta(tick, now) if tick else '?'})"
        )
    else:
        tick = moment(daemon["last_tick_at"])
        state = "not running" + (f" (last seen {humanize_delta(tick, now)})" if tick else "")
    jobs = summary["jobs"]
    pairs = [
        ("daemon", state),
        *([("problem", daemon["problem"])] if daemon.get("problem") else []),
        (
            "jobs",
            f"{jobs['enabled']} enabled, {jobs['paused']} paused, {jobs['completed']} completed",
        ),
        ("runs (24h)", _count_texts(summary["counts_24h"], summary["missed_24h"]) or "none"),
        (
            "failing (24h)",
            [f"{item['job']} ({item['failures']})" for item in summary["failing_jobs"]],
        ),
        (
            "auto-paused",
            [f"{item['job']} ({item['reason']})" for item in summary["auto_paused"]],
        ),
    ]
    text = key_values(pairs, width=width)
    if summary["upcoming"]:
        text += "\nnext fires:\n" + "\n".join(
            f"  {local_text(moment(item['at']) or now)}  {item['job']}"
            for item in summary["upcoming"]
        )
    return text
