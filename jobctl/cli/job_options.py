"""The options `add` and `edit` share, and how their values become a JobChange."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli.complete import complete_zones
from jobctl.cli.http_check_options import HTTP_CHECK_OPTIONS, check_fields
from jobctl.cli.shared import F

if TYPE_CHECKING:
    from jobctl.models import Job, JobChange

JOB_OPTIONS: list[Callable[[F], F]] = [
    click.option("--url", metavar="URL", help="HTTP action: the URL to request."),
    click.option("--agent", metavar="AGENT", help="Agent action: the agent to prompt."),
    click.option(
        "--team", metavar="TEAM", help="Agent action: the team to prompt (instead of --agent)."
    ),
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
    click.option("--model", metavar="M", help="Agent action: use model M instead of the agent's."),
    click.option(
        "--max-tokens",
        metavar="N",
        help="Agent action: at most N tokens per answer (over the agent's; '' clears).",
    ),
    click.option(
        "--budget-tokens",
        metavar="N",
        help="Agent action: skip slots once the job's runs would use more than N tokens per "
        "--budget-per period (0 or '' clears).",
    ),
    click.option(
        "--budget-per",
        type=click.Choice(["day", "week", "month"]),
        help="The period of --budget-tokens (default day), in the job's time zone.",
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
    *HTTP_CHECK_OPTIONS,
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
        "--queue",
        metavar="NAME",
        help="The queue whose daemons fire the job (default `default`).",
    ),
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


def change_from_click(params: dict[str, Any], **fields: Any) -> JobChange:
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
        queue=given.get("queue"),
        timezone=given.get("tz"),
        url=given.get("url"),
        method=given.get("method"),
        headers=dict(parse_header(item) for item in header if item) if header else None,
        body=given.get("body"),
        json_body=given.get("json_body"),
        expect=given.get("expect"),
        forward_payload=given.get("forward_payload"),
        **check_fields(given),
        agent=given.get("agent"),
        team=given.get("team"),
        prompt=given.get("prompt"),
        deliver=given.get("deliver"),
        model=given.get("model"),
        max_tokens=given.get("max_tokens"),
        budget_tokens=given.get("budget_tokens"),
        budget_per=given.get("budget_per"),
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


def nothing_given(params: dict[str, Any]) -> bool:
    return all(value is None or value == () for value in params.values())


def current_time() -> datetime:
    from jobctl.timeutil import utcnow

    return utcnow()


def print_job_line(verb: str, job: Job) -> None:
    from jobctl.timeutil import get_zone, local_text

    when = (
        f"next run {local_text(job.next_run_at, get_zone(job.timezone))} ({job.timezone})"
        if job.next_run_at
        else f"state {job.state}, no scheduled run"
    )
    click.echo(f"{verb} job {job.name!r}: {when}")
