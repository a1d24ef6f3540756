"""The commands that read jobs: `list`, `show` and `next`."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli.complete import complete_job_names, complete_zones
from jobctl.cli.job_options import current_time
from jobctl.cli.shared import cli, db_option, json_option, read_db, read_listing, wide_option
from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from jobctl.history import JobStats
    from jobctl.listing import ListedJob
    from jobctl.models import Job
    from jobctl.store import Store


def _listed_jobs(ctx: click.Context) -> tuple[list[ListedJob], Store | None]:
    """The jobs as `list` shows them, and the store when some run may be in flight.

    An SQLite database is read through one statement (jobctl.store.sqlite.listing), with
    the store and the models imported only when some run is `running`: then runs of dead
    processes are marked interrupted first, as every reading command does."""
    from jobctl.listing import STRIP_LENGTH

    listing = read_listing(ctx)
    if listing is None:  # PostgreSQL, or no database yet: through the models
        from jobctl.catalog import list_jobs
        from jobctl.history import jobs_stats

        store = read_db(ctx, tidy=True)
        jobs = list_jobs(store)
        stats = jobs_stats(store, jobs, STRIP_LENGTH)  # the table shows no durations
        return listed_from_models(jobs, stats), store
    from jobctl.listing import listed_from_rows

    in_flight_store: Store | None = None
    if listing.has_running_runs():
        from jobctl.runs import tidy_orphans

        in_flight_store = listing.store()
        if listing.writable:
            tidy_orphans(in_flight_store, current_time())
    return listed_from_rows(listing.rows(STRIP_LENGTH)), in_flight_store


def listed_from_models(jobs: Iterable[Job], stats: Iterable[JobStats]) -> list[ListedJob]:
    """ListedJobs from the models (PostgreSQL, and the test of the SQLite statement)."""
    from jobctl.jobs import action_summary
    from jobctl.listing import ListedJob

    return [
        ListedJob(
            name=job.name,
            state=job.state,
            paused_reason=job.paused_reason,
            trigger=job.schedule_kind,
            schedule=job.schedule,
            action=action_summary(job),
            next_run_at=job.next_run_at,
            last_run_at=job.last_run_at,
            last_status=job.last_status,
            success_rate=stat.success_rate,
            recent=stat.recent,
        )
        for job, stat in zip(jobs, stats, strict=True)
    ]


def _list_rows(listed: list[ListedJob], now: datetime, colour: bool) -> list[list[str]]:
    from jobctl.listing import strip_text
    from jobctl.output import colour_status, unicode_ok
    from jobctl.schedule import describe
    from jobctl.timeutil import humanize_delta

    unicode = unicode_ok()
    strips: dict[tuple[str, ...], str] = {}  # most jobs share a few strips
    rows = []
    for job in listed:
        state = job.state + (f" ({job.paused_reason})" if job.paused_reason else "")
        rate = f"{job.success_rate * 100:.0f}%" if job.success_rate is not None else "-"
        recent = tuple(job.recent)
        strip = strips.get(recent)
        if strip is None:
            strip = strips[recent] = strip_text(recent, unicode) or "-"
        rows.append(
            [
                job.name,
                colour_status(job.state, colour, label=state),
                describe(job.trigger, job.schedule),
                job.action,
                humanize_delta(job.next_run_at, now) if job.next_run_at else "-",
                humanize_delta(job.last_run_at, now) if job.last_run_at else "-",
                colour_status(job.last_status, colour),
                rate,
                strip,
            ]
        )
    return rows


@cli.command(name="list")
@wide_option
@db_option
@json_option
@click.pass_context
def list_(ctx: click.Context, wide: bool, as_json: bool) -> None:
    """List jobs with their schedule, next run and last outcome.

    On a terminal the table fits its width: long states, schedules and actions are cut
    short, and LAST, RECENT and OK make way if needed, then as many other columns as it
    takes. Names are always whole; --wide, or output to a pipe, shows everything. Runs in
    flight follow the table: how long so far and the last line of their output.

    \b
    Examples:
      jobctl list
      jobctl list --wide
      jobctl list --json | jq '.[] | select(.last_status == "failed") | .name'
    """
    from jobctl.output import Column, output_width, table, use_colour

    # What exists now (every module's objects) stays to the end: frozen out of the cyclic
    # collector's way, its passes over 1,000 jobs' objects no longer walk all of it again
    # (10-14 ms of CPU measured). Given back when the command ends, for in-process callers.
    gc.freeze()
    ctx.call_on_close(gc.unfreeze)
    if as_json:
        from jobctl.catalog import list_jobs
        from jobctl.output import to_json
        from jobctl.reports import job_listing

        whole = read_db(ctx, tidy=True)
        click.echo(to_json(job_listing(whole, current_time(), list_jobs(whole))))
        return
    listed, store = _listed_jobs(ctx)
    current: dict[int, dict[str, Any]] = {}
    if store is not None:
        from jobctl.current_runs import current_runs

        current = current_runs(store, current_time())
    if not listed:
        click.echo("no jobs yet: add one with `jobctl add NAME --url URL --every 5m`", err=True)
        return
    # Free text is cut to fit; OK, RECENT, then LAST go when cutting is not enough.
    columns = [
        Column("NAME", whole=True),
        Column("STATE", shrink=True),
        Column("SCHEDULE", shrink=True),
        Column("ACTION", shrink=True),
        Column("NEXT"),
        Column("LAST", drop=3),
        Column("STATUS"),
        Column("OK", drop=1),
        Column("RECENT", drop=2),
    ]
    rows = _list_rows(listed, current_time(), use_colour())
    width = output_width(wide=wide)
    click.echo(table(rows, columns, width=width))
    if current and store is not None:
        from jobctl.cli.current_views import in_flight_text
        from jobctl.current_runs import in_flight

        click.echo("\n" + in_flight_text(in_flight(store, current_time()), width))


@cli.command()
@click.argument("name", shell_complete=complete_job_names)
@wide_option
@db_option
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, wide: bool, as_json: bool) -> None:
    """Show everything about a job, its run in flight, and its next 5 fire times.

    On a terminal, long values wrap onto indented lines within its width (--wide: never).

    \b
    Examples:
      jobctl show backup
      jobctl show backup --json
    """
    from jobctl.catalog import get_job
    from jobctl.output import to_json
    from jobctl.reports import job_report, upcoming_fires

    store = read_db(ctx, tidy=True)
    job = get_job(store, name)
    now = current_time()
    data = job_report(store, job, now)
    if as_json:
        click.echo(to_json(data))
        return
    upcoming = upcoming_fires(job, now)
    from jobctl.output import output_width

    click.echo(_render_show(job, data, upcoming, output_width(wide=wide)))


def _render_show(
    job: Job, data: dict[str, Any], upcoming: list[datetime], width: int | None
) -> str:
    from jobctl.cli.current_views import current_run_pairs
    from jobctl.output import key_values
    from jobctl.policies import as_text
    from jobctl.schedule import describe
    from jobctl.timeutil import get_zone, local_text

    zone = get_zone(job.timezone)

    def when(moment: datetime | None) -> str | None:
        return local_text(moment, zone) if moment else None

    pairs: list[tuple[str, object]] = [
        ("name", job.name),
        ("description", job.description),
        ("queue", job.queue),
        ("state", job.state + (f" ({job.paused_reason})" if job.paused_reason else "")),
        *current_run_pairs(data["current_run"]),
        ("action", job.action),
    ]
    for key, value in data["spec"].items():
        if isinstance(value, dict):
            value = [f"{k}: {v}" for k, v in value.items()]
        elif job.action == "exec" and key == "shell":
            value = "/bin/sh -c" if value else "none (the words are run directly)"
        elif key == "agent" and data["spec"].get("team"):
            continue  # a team's job: the team line says who answers
        pairs.append((f"  {key}", value))
    pairs += [
        ("trigger", describe(job.schedule_kind, job.schedule)),
        ("timezone", job.timezone),
        ("next run", when(job.next_run_at)),
        ("last run", when(job.last_run_at)),
        ("last status", job.last_status),
        ("last success", when(job.last_success_at)),
        (
            "runs",
            f"{job.runs_total} total, {job.runs_succeeded} succeeded, "
            f"{job.runs_failed} failed, {job.runs_skipped} skipped, "
            f"{job.runs_missed} missed",
        ),
        (
            "success rate",
            f"{data['success_rate'] * 100:.1f}%" if data["success_rate"] is not None else None,
        ),
        (
            "duration",
            f"avg {data['avg_duration_ms']} ms, p95 {data['p95_duration_ms']} ms"
            if data["avg_duration_ms"] is not None
            else None,
        ),
        ("response", _response_time(data.get("http_timings"))),
        ("recent", _strip(data["recent"])),
        *_token_pairs(data),
        (
            "policies",
            [f"{k} {as_text(k, v)}" for k, v in data["policies"].items() if k != "notify"],
        ),
        ("notify", [f"{t['on']}: {t['url']}" for t in data["policies"]["notify"]]),
        ("runs after", list(data["after"])),
        ("webhook", "enabled (see `jobctl hook show`)" if data["webhook"] else None),
    ]
    text = key_values(pairs, width=width)
    if upcoming:
        text += f"\nnext {len(upcoming)} fires ({job.timezone}):\n"
        text += "\n".join(f"  {local_text(moment, zone)}" for moment in upcoming)
    return text


def _token_pairs(data: dict[str, Any]) -> list[tuple[str, object]]:
    """An agent job's budgets and its tokens this month, with their cost where priced."""
    from jobctl.budgets import describe_use

    use = data.get("token_use")
    if use is None:
        return []
    tokens = (
        f"{use['total_tokens']:,} this month in {use['calls']} call"
        f"{'' if use['calls'] == 1 else 's'} ({use['prompt_tokens']:,} in, "
        f"{use['completion_tokens']:,} out)"
    )
    if use["cost_usd"] is not None:
        tokens += f", about ${use['cost_usd']:.4f}"
    return [("tokens", tokens), ("budgets", [describe_use(item) for item in data["budgets"]])]


def _response_time(stats: dict[str, Any] | None) -> str | None:
    """An HTTP job's p50/p95 of total and first-byte time, over the runs that recorded them."""
    if not stats or not stats["runs"]:
        return None
    total, first = stats["total_ms"], stats["first_byte_ms"]
    return (
        f"p50 {total['p50']:.0f} ms, p95 {total['p95']:.0f} ms; first byte "
        f"p50 {first['p50']:.0f} ms, p95 {first['p95']:.0f} ms ({stats['runs']} runs)"
    )


def _strip(recent: list[str]) -> str | None:
    from jobctl.listing import strip_text
    from jobctl.output import unicode_ok

    return strip_text(recent, unicode_ok()) or None


@cli.command(name="next")
@click.argument("name", required=False, shell_complete=complete_job_names)
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many fire times.",
)
@click.option("--after", metavar="TIME", help="Start after TIME instead of now.")
@click.option("--cron", metavar="EXPR", help="Preview a cron expression instead of a job.")
@click.option("--every", metavar="DURATION", help="Preview an interval instead of a job.")
@click.option("--offset", metavar="DURATION", help="With --every: the offset.")
@click.option(
    "--tz",
    metavar="ZONE",
    shell_complete=complete_zones,
    help="Time zone for --cron/--every (default: the machine's).",
)
@db_option
@json_option
@click.pass_context
def next_(
    ctx: click.Context,
    name: str | None,
    count: int,
    after: str | None,
    cron: str | None,
    every: str | None,
    offset: str | None,
    tz: str | None,
    as_json: bool,
) -> None:
    """Preview the next fire times of a job, or of a cron expression or interval.

    For a paused job, a note on stderr says these are the times it would fire once resumed.

    \b
    Examples:
      jobctl next backup -n 3
      jobctl next --cron '30 2 * * *' --tz America/New_York --after '2026-03-07 12:00'
    """
    from jobctl.catalog import get_job
    from jobctl.output import to_json
    from jobctl.schedule import build_schedule, fire_times, validate_fires
    from jobctl.timeutil import get_zone, iso_z, local_text, local_zone_name, parse_time

    if name and (cron or every):
        raise InvalidInput("give a job NAME or --cron/--every, not both")
    if offset and not every:
        raise InvalidInput("--offset goes with --every")
    if name:
        if tz:
            raise InvalidInput("--tz goes with --cron/--every; a job uses its own zone")
        job = get_job(read_db(ctx), name)
        zone_name = job.timezone
        timetable = job.build_schedule()
        if timetable is None:
            raise InvalidInput(f"job {name!r} is manual-only: it has no fire times")
    elif cron or every:
        if cron and every:
            raise InvalidInput("--cron and --every cannot be combined")
        zone_name = get_zone(tz).key if tz else local_zone_name()
        text = cron if cron else (f"{every}+{offset}" if offset else every)
        timetable = build_schedule("cron" if cron else "every", text, zone_name)
        assert timetable is not None
    else:
        raise InvalidInput("give a job NAME, or --cron EXPR or --every DURATION to preview")
    zone = get_zone(zone_name)
    start = parse_time(after, zone, what="--after") if after else current_time()
    if not name:
        validate_fires(timetable, start)
    moments = fire_times(timetable, start, count)
    if name and job.state == "paused" and moments:
        click.echo(
            f"job {name!r} is paused: it would fire at these times once resumed "
            f"(`jobctl resume {name}`)",
            err=True,
        )
    if as_json:
        click.echo(to_json([iso_z(moment) for moment in moments]))
        return
    if not moments:
        click.echo("no fire times ahead", err=True)
    for moment in moments:
        click.echo(f"{local_text(moment, zone)}  {zone_name}")
