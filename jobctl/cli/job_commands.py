"""Commands that edit and read jobs: add, edit, rm, list, show, pause, resume, next."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli.complete import complete_job_names, complete_zones
from jobctl.cli.shared import F, cli, db_option, json_option, open_db, read_db, wide_option
from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from jobctl.models import JobChange

JOB_OPTIONS: list[Callable[[F], F]] = [
    click.option("--url", metavar="URL", help="HTTP action: the URL to request."),
    click.option("--agent", metavar="AGENT", help="Agent action: the agent to prompt."),
    click.option(
        "--prompt",
        metavar="TEXT|@FILE|-",
        help="Agent action: the prompt ({job}, {now}, {last_output} ... are filled in).",
    ),
    click.option(
        "--deliver",
        metavar="URL",
        help="Agent action: POST the answer as JSON to URL (Slack, Discord, ...).",
    ),
    click.option("--exec", "exec_", metavar="CMD", help="Exec action: the command line to run."),
    click.option(
        "--cron",
        metavar="EXPR",
        help="Cron expression (5 fields, 6 with seconds first, or @daily ...).",
    ),
    click.option(
        "--every", metavar="DURATION", help="Fixed interval aligned to the clock, like 15m."
    ),
    click.option(
        "--offset",
        metavar="DURATION",
        help="With --every: shift the slots (every 15m offset 5m: :05 :20 ...).",
    ),
    click.option(
        "--at",
        metavar="TIME",
        help="Once, at TIME (YYYY-MM-DD HH:MM in the job's zone, or ISO-8601).",
    ),
    click.option(
        "--manual", is_flag=True, default=None, help="Only when run by hand or by a webhook."
    ),
    click.option("--method", metavar="M", help="HTTP method (default GET, or POST with a body)."),
    click.option("--header", multiple=True, metavar="'K: V'", help="HTTP header; repeat for more."),
    click.option("--body", metavar="TEXT|@FILE|-", help="HTTP request body."),
    click.option("--json-body", metavar="JSON", help="HTTP JSON body; sets Content-Type."),
    click.option(
        "--expect",
        metavar="CODES",
        help="Statuses that count as success (default 2xx; e.g. 200,204).",
    ),
    click.option("--cwd", metavar="DIR", help="Exec: working directory."),
    click.option(
        "--env", multiple=True, metavar="K=V", help="Exec: environment variable; repeat for more."
    ),
    click.option(
        "--shell/--no-shell",
        default=None,
        help="Exec: run CMD with /bin/sh -c, as cron does (the default); --no-shell splits it "
        "into words and runs the program directly.",
    ),
    click.option(
        "--tz",
        metavar="ZONE",
        shell_complete=complete_zones,
        help="IANA time zone for the schedule (default: the machine's).",
    ),
    click.option("--description", metavar="TEXT", help="What the job is for."),
    click.option(
        "--timeout", metavar="D", help="Give up after D (default 30s http, 10m agent, 1h exec)."
    ),
    click.option("--retries", metavar="N", help="Retries after a failure (default 0)."),
    click.option(
        "--backoff", metavar="D", help="First retry delay, doubling up to 1h (default 10s)."
    ),
    click.option(
        "--overlap",
        type=click.Choice(["skip", "queue", "allow"]),
        help="While a run is in flight: skip (default), queue or allow.",
    ),
    click.option(
        "--catchup",
        type=click.Choice(["latest", "skip", "all"]),
        help="After downtime: fire the latest missed slot (default), none, or all.",
    ),
    click.option(
        "--catchup-window", metavar="D", help="How far back catch-up looks (default 24h)."
    ),
    click.option(
        "--jitter", metavar="D", help="Random delay up to D before each fire (default 0)."
    ),
    click.option(
        "--max-failures",
        metavar="N",
        help="Pause after N failures in a row (0 = off, the default).",
    ),
    click.option("--keep", metavar="N", help="Runs to keep in the history (default 1000)."),
    click.option("--keep-for", metavar="D", help="Drop runs older than D (default: keep)."),
    click.option(
        "--notify-on",
        nargs=2,
        multiple=True,
        metavar="WHEN URL",
        help="POST a JSON summary to URL after a run: WHEN is failure, success or always; repeat for more; an empty URL clears.",
    ),
    click.option(
        "--alert-if-no-success",
        metavar="D",
        help="Notify when the job has not succeeded for D (a dead-man's switch).",
    ),
    click.option(
        "--after",
        multiple=True,
        metavar="JOB[:WHEN]",
        help="Run when JOB's run ends: succeeded (default), failed or finished; repeat for more.",
    ),
    click.option(
        "--forward-payload/--no-forward-payload",
        default=None,
        help="HTTP: send a webhook's body on as this request's body.",
    ),
]


def job_options(func: F) -> F:
    for option in reversed(JOB_OPTIONS):
        func = option(func)
    return func


def _change_from_click(params: dict[str, Any], **fields: Any) -> JobChange:
    """Click's keyword arguments as a JobChange: only those given, files read, 'K: V'
    headers and K=V variables split (an empty one clears), `--after` items parsed."""
    from jobctl.job_changes import parse_after
    from jobctl.jobs import parse_env_pair, parse_header, read_text_argument
    from jobctl.models import POLICY_NAMES, JobChange, NotifyTarget

    given = {key: value for key, value in params.items() if value is not None and value != ()}
    for key, what in (("body", "--body"), ("prompt", "--prompt"), ("json_body", "--json-body")):
        if given.get(key):
            given[key] = read_text_argument(given[key], what=what)
    header, env, notify_on = given.get("header"), given.get("env"), given.get("notify_on")
    return JobChange(
        **fields,
        new_name=given.get("new_name"),
        description=given.get("description"),
        timezone=given.get("tz"),
        url=given.get("url"),
        method=given.get("method"),
        headers=dict(parse_header(item) for item in header if item) if header else None,
        body=given.get("body"),
        json_body=given.get("json_body"),
        expect=given.get("expect"),
        forward_payload=given.get("forward_payload"),
        agent=given.get("agent"),
        prompt=given.get("prompt"),
        deliver=given.get("deliver"),
        command=given.get("exec_"),
        cwd=given.get("cwd"),
        env=dict(parse_env_pair(item) for item in env if item) if env else None,
        shell=given.get("shell"),
        cron=given.get("cron"),
        every=given.get("every"),
        offset=given.get("offset"),
        at=given.get("at"),
        manual=given.get("manual"),
        policies={name: given[name] for name in POLICY_NAMES if name in given},
        notify=tuple(NotifyTarget(on, url) for on, url in notify_on) if notify_on else None,
        after=parse_after(given["after"]) if "after" in given else None,
    )


def _nothing_given(params: dict[str, Any]) -> bool:
    return all(value is None or value == () for value in params.values())


def _now() -> datetime:
    from jobctl.timeutil import utcnow

    return utcnow()


def _print_job_line(verb: str, job: Any) -> None:
    from jobctl.timeutil import get_zone, local_text

    when = (
        f"next run {local_text(job.next_run_at, get_zone(job.timezone))} ({job.timezone})"
        if job.next_run_at
        else f"state {job.state}, no scheduled run"
    )
    click.echo(f"{verb} job {job.name!r}: {when}")


@cli.command()
@click.argument("name")
@job_options
@click.option("--paused", is_flag=True, help="Add the job paused.")
@db_option
@json_option
@click.pass_context
def add(ctx: click.Context, /, name: str, paused: bool, as_json: bool, **params: Any) -> None:
    """Add a job: one action and one trigger, with optional policies.

    \b
    Examples:
      jobctl add backup --url https://example.com/backup --method POST --cron '0 3 * * *'
      jobctl add report --exec 'make report' --cwd ~/src/site --every 1h --offset 5m
      jobctl add nightly --exec 'cd ~/site && make deploy >> deploy.log 2>&1' --cron '0 3 * * *'
    """
    from jobctl.catalog import add_job
    from jobctl.jobs import job_to_dict
    from jobctl.output import to_json

    change = _change_from_click(params, name=name, state="paused" if paused else None)
    job = add_job(open_db(ctx), change, _now())
    if as_json:
        click.echo(to_json(job_to_dict(job)))
    else:
        _print_job_line("added", job)


@cli.command()
@click.argument("name", shell_complete=complete_job_names)
@click.option("--name", "new_name", metavar="NEW", help="Rename the job (its history stays).")
@job_options
@db_option
@json_option
@click.pass_context
def edit(ctx: click.Context, /, name: str, as_json: bool, **params: Any) -> None:
    """Change a job: each option given replaces that field; '' clears an optional one.

    \b
    Examples:
      jobctl edit backup --cron '30 3 * * *' --tz Europe/Berlin
      jobctl edit backup --header 'Authorization: Bearer ${BACKUP_TOKEN}'
    """
    from jobctl.catalog import edit_job
    from jobctl.jobs import job_to_dict
    from jobctl.output import to_json

    if _nothing_given(params):
        raise InvalidInput("nothing to change: give at least one option (see `jobctl edit --help`)")
    job = edit_job(open_db(ctx), name, _change_from_click(params), _now())
    if as_json:
        click.echo(to_json(job_to_dict(job)))
    else:
        _print_job_line("updated", job)


@cli.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_job_names
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Remove even while a run is in flight.")
@db_option
@click.pass_context
def rm(ctx: click.Context, names: tuple[str, ...], yes: bool, force: bool) -> None:
    """Remove jobs and their run history.

    \b
    Examples:
      jobctl rm old-report
      jobctl rm a b c --yes
    """
    from jobctl.catalog import get_jobs, remove_jobs

    store = open_db(ctx)
    if not yes and sys.stdin.isatty():
        get_jobs(store, names)  # unknown names fail before the question
        click.confirm(f"Remove {', '.join(names)} and all their runs?", abort=True)
    for removed in remove_jobs(store, names, force=force):
        click.echo(f"removed job {removed!r}")


def _list_rows(jobs: list[Any], stats: list[Any], now: datetime, colour: bool) -> list[list[str]]:
    from jobctl.jobs import action_summary
    from jobctl.output import colour_status, unicode_ok
    from jobctl.schedule import describe
    from jobctl.timeutil import humanize_delta

    unicode = unicode_ok()
    rows = []
    for job, stat in zip(jobs, stats, strict=True):
        state = job.state + (f" ({job.paused_reason})" if job.paused_reason else "")
        rate = f"{stat.success_rate * 100:.0f}%" if stat.success_rate is not None else "-"
        rows.append(
            [
                job.name,
                colour_status(job.state, colour, label=state),
                describe(job.trigger, job.schedule),
                action_summary(job),
                humanize_delta(job.next_run_at, now) if job.next_run_at else "-",
                humanize_delta(job.last_run_at, now) if job.last_run_at else "-",
                colour_status(job.last_status, colour),
                rate,
                stat.strip(unicode) or "-",
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
    takes. Names are always whole; --wide, or output to a pipe, shows everything.

    \b
    Examples:
      jobctl list
      jobctl list --wide
      jobctl list --json | jq '.[] | select(.last_status == "failed") | .name'
    """
    from jobctl.catalog import list_jobs
    from jobctl.history import LIST_STATS_WINDOW, job_stats, stats_to_dict
    from jobctl.jobs import job_to_dict
    from jobctl.output import Column, output_width, table, to_json, use_colour

    store = read_db(ctx, tidy=True)
    jobs = list_jobs(store)
    stats = [job_stats(store, job, LIST_STATS_WINDOW) for job in jobs]
    if as_json:
        click.echo(
            to_json(
                [
                    job_to_dict(job) | stats_to_dict(stat)
                    for job, stat in zip(jobs, stats, strict=True)
                ]
            )
        )
        return
    if not jobs:
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
    rows = _list_rows(jobs, stats, _now(), use_colour())
    click.echo(table(rows, columns, width=output_width(wide=wide)))


@cli.command()
@click.argument("name", shell_complete=complete_job_names)
@wide_option
@db_option
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, wide: bool, as_json: bool) -> None:
    """Show everything about a job, with its next 5 fire times.

    On a terminal, long values wrap onto indented lines within its width (--wide: never).

    \b
    Examples:
      jobctl show backup
      jobctl show backup --json
    """
    from jobctl import hooks
    from jobctl.catalog import chains_of, get_job
    from jobctl.history import job_stats, stats_to_dict
    from jobctl.jobs import job_to_dict
    from jobctl.output import to_json
    from jobctl.schedule import fire_times

    store = read_db(ctx, tidy=True)
    job = get_job(store, name)
    now = _now()
    plan = job.build_schedule() if job.state == "enabled" else None
    upcoming = fire_times(plan, now, 5) if plan is not None else []
    data = job_to_dict(job) | stats_to_dict(job_stats(store, job))
    data["after"] = chains_of(store, job.id or 0)
    data["webhook"] = hooks.is_enabled(store, job)
    if as_json:
        from jobctl.timeutil import iso_z

        data["upcoming"] = [iso_z(moment) for moment in upcoming]
        click.echo(to_json(data))
        return
    from jobctl.output import output_width

    click.echo(_render_show(job, data, upcoming, output_width(wide=wide)))


def _render_show(
    job: Any, data: dict[str, Any], upcoming: list[datetime], width: int | None
) -> str:
    from jobctl.output import key_values
    from jobctl.policies import as_text
    from jobctl.schedule import describe
    from jobctl.timeutil import get_zone, local_text

    zone = get_zone(job.timezone)

    def when(moment: datetime | None) -> str | None:
        return local_text(moment, zone) if moment else None

    pairs: list[tuple[str, Any]] = [
        ("name", job.name),
        ("description", job.description),
        ("state", job.state + (f" ({job.paused_reason})" if job.paused_reason else "")),
        ("action", job.action),
    ]
    for key, value in data["spec"].items():
        if isinstance(value, dict):
            value = [f"{k}: {v}" for k, v in value.items()]
        elif job.action == "exec" and key == "shell":
            value = "/bin/sh -c" if value else "none (the words are run directly)"
        pairs.append((f"  {key}", value))
    pairs += [
        ("trigger", describe(job.trigger, job.schedule)),
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
        ("recent", _strip(data["recent"])),
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


def _strip(recent: list[str]) -> str | None:
    from jobctl.history import JobStats
    from jobctl.output import unicode_ok

    return JobStats(recent=recent).strip(unicode_ok()) or None


def _set_paused(ctx: click.Context, names: tuple[str, ...], paused: bool) -> None:
    from jobctl.catalog import set_paused

    for job in set_paused(open_db(ctx), names, paused, _now()):
        if paused:
            click.echo(f"paused job {job.name!r}")
        else:
            _print_job_line("resumed", job)


@cli.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_job_names
)
@db_option
@click.pass_context
def pause(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Stop a job's automatic triggers (`jobctl run` still works).

    \b
    Examples:
      jobctl pause backup
      jobctl pause a b c
    """
    _set_paused(ctx, names, True)


@cli.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_job_names
)
@db_option
@click.pass_context
def resume(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Start a paused job's triggers again (its failure count starts over).

    \b
    Examples:
      jobctl resume backup
    """
    _set_paused(ctx, names, False)


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
        plan = job.build_schedule()
        if plan is None:
            raise InvalidInput(f"job {name!r} is manual-only: it has no fire times")
    elif cron or every:
        if cron and every:
            raise InvalidInput("--cron and --every cannot be combined")
        zone_name = get_zone(tz).key if tz else local_zone_name()
        text = cron if cron else (f"{every}+{offset}" if offset else every)
        plan = build_schedule("cron" if cron else "every", text, zone_name)
        assert plan is not None
    else:
        raise InvalidInput("give a job NAME, or --cron EXPR or --every DURATION to preview")
    zone = get_zone(zone_name)
    start = parse_time(after, zone, what="--after") if after else _now()
    if not name:
        validate_fires(plan, start)
    moments = fire_times(plan, start, count)
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
