"""`jobctl status`: daemon liveness, jobs by state, the last 24 hours of runs, next fires."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from jobctl.cli.shared import cli, db_option, db_path, json_option, read_db
from jobctl.errors import DaemonUnavailable


def _now() -> datetime:
    from jobctl.timeutil import utcnow

    return utcnow()


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
    with their count, and jobs that jobctl paused itself with the reason. Every run in
    flight is listed with how long it has run and the last line of its output.

    \b
    Examples:
      jobctl status
      jobctl status --check || systemctl --user restart jobctl
    """
    from jobctl.output import to_json
    from jobctl.reports import status_report

    store = read_db(ctx, tidy=True)
    now = _now()
    summary = status_report(store, db_path(ctx), now)
    problem = summary["daemon"]["problem"]
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


def _fleet_pairs(summary: dict[str, Any], now: datetime) -> list[tuple[str, Any]]:
    """The live daemons (when there are several, or one on some queues) and the queues no
    live daemon fires."""
    from jobctl.timeutil import humanize_delta

    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    daemons = summary["daemons"]
    pairs: list[tuple[str, Any]] = []
    # One line per daemon and per queue: each line is full of commas already.
    if len(daemons) > 1 or any(d["queues"] for d in daemons):
        pairs.append(
            (
                "fleet",
                "\n".join(
                    f"{d['host']} pid {d['pid']}: queues {', '.join(d['queues'] or ['all'])}, "
                    f"up {humanize_delta(moment(d['started_at']), now).removesuffix(' ago')}, "
                    f"heartbeat {humanize_delta(moment(d['last_heartbeat_at']), now)}, "
                    f"{d['in_flight']} in flight, {d['fired_last_minute']} fired in the last "
                    "minute"
                    for d in daemons
                ),
            )
        )
    if daemons and summary["unserved_queues"]:
        pairs.append(
            (
                "problem",
                "\n".join(
                    f"queue {q['queue']}: {q['jobs']} enabled job{'s' if q['jobs'] != 1 else ''}"
                    " and no live daemon firing it (its slots are recorded missed)"
                    for q in summary["unserved_queues"]
                ),
            )
        )
    return pairs


def _render_status(summary: dict[str, Any], now: datetime, width: int | None = None) -> str:
    from jobctl.budgets import describe_use
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
        ("budgets", [describe_use(item) for item in summary.get("budgets", [])]),
    ]
    pairs[1:1] = _fleet_pairs(summary, now)
    text = key_values(pairs, width=width)
    if summary["in_flight"]:
        from jobctl.cli.current_views import in_flight_text

        text += "\n" + in_flight_text(summary["in_flight"], width)
    if summary.get("waiting"):
        text += "\nwaiting for approval (`jobctl runs approve ID` or `runs reject ID`):\n"
        text += "\n".join(
            f"  run {item['run']} of {item['job']}, step {item['step']}, since "
            f"{local_text(moment(item['since']) or now)}: {item['approval']}"
            + (f" ({item['decision']})" if item["decision"] else "")
            for item in summary["waiting"]
        )
    if summary["upcoming"]:
        text += "\nnext fires:\n" + "\n".join(
            f"  {local_text(moment(item['at']) or now)}  {item['job']}"
            for item in summary["upcoming"]
        )
    return text
