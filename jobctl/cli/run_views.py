"""How runs look: the `runs` table, JSON lines and CSV, the `--follow` table, and the text
of one run (`runs show`)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jobctl.models import Run
    from jobctl.output import Column, TableLayout
    from jobctl.store import Store


def print_runs(runs: list[Run], fmt: str, now: datetime, width: int | None) -> None:
    from jobctl.output import to_json
    from jobctl.runs import run_to_dict

    if fmt == "json":
        click.echo(to_json([run_to_dict(run) for run in runs]))
    elif fmt == "jsonl":
        from jobctl.output import to_json_line

        for run in runs:
            click.echo(to_json_line(run_to_dict(run)))
    elif fmt == "csv":
        _print_csv(runs)
    elif not runs:
        click.echo("no runs match", err=True)
    else:
        from jobctl.output import table, use_colour

        colour = use_colour()
        click.echo(table([run_cells(run, now, colour) for run in runs], columns(), width=width))


def columns() -> list[Column]:
    """The `runs` table: ERROR is cut to fit; STARTED, TRIGGER, CODE, DURATION make way."""
    from jobctl.output import Column

    return [
        Column("ID", whole=True),
        Column("JOB", whole=True),
        Column("TRIGGER", drop=2),
        Column("SCHEDULED"),
        Column("STARTED", drop=1),
        Column("DURATION", drop=4),
        Column("STATUS"),
        Column("CODE", drop=3),
        Column("ERROR", shrink=True),
    ]


def _print_csv(runs: list[Run]) -> None:
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
    for run in runs:
        writer.writerow(run_to_dict(run))


def run_cells(run: Run, now: datetime, colour: bool) -> list[str]:
    from jobctl.output import colour_status
    from jobctl.timeutil import format_duration, humanize_delta

    scheduled = run.scheduled_for.astimezone().strftime("%m-%d %H:%M:%S")
    started = humanize_delta(run.started_at, now) if run.started_at else "-"
    duration = format_duration(run.duration_ms / 1000) if run.duration_ms is not None else "-"
    code = (
        str(run.http_status)
        if run.http_status is not None
        else str(run.exit_code)
        if run.exit_code is not None
        else "-"
    )
    error = " ".join((run.error or "").split())
    return [
        str(run.id),
        run.job or "-",  # an ad hoc run has no job
        run.trigger.value,
        scheduled,
        started,
        duration,
        colour_status(run.status.value, colour),
        code,
        error or "-",
    ]


class FollowTable:
    """The `runs --follow` table: one header, and column widths fixed when it is printed
    (wide enough for the longest job name and the ids to come), so rows stay aligned."""

    def __init__(self, store: Store, width: int | None) -> None:
        self.store = store
        self.width = width
        self.layout: TableLayout | None = None

    def print(self, runs: list[Run], now: datetime) -> None:
        from jobctl.output import table_layout, use_colour

        colour = use_colour()
        cells = [run_cells(run, now, colour) for run in runs]
        if self.layout is None:
            widest = [
                "9" * (len(str(self.store.newest_run_id())) + 1),
                "x" * self.store.longest_job_name(),
                "schedule",
                "12-31 23:59:59",
                "59m ago",
                "59m59s",
                "interrupted",
                "999",
                # ERROR takes the rest of the line on a terminal.
                "x" * (self.width or 0),
            ]
            self.layout = table_layout([*cells, widest], columns(), self.width)
            click.echo(self.layout.render_header())
        for row in cells:
            click.echo(self.layout.render(row))


_PHASES = ("redirects", "dns", "connect", "tls", "send", "wait", "receive")


def _http_pairs(details: Mapping[str, object]) -> list[tuple[str, object]]:
    """An HTTP run's response size, redirects and timings (those it recorded)."""
    pairs: list[tuple[str, object]] = []
    if details.get("body_size") is not None:
        pairs.append(("body size", f"{details['body_size']:,} bytes"))
    if details.get("redirects"):
        pairs.append(("redirects", f"{details['redirects']}, to {details.get('final_url')}"))
    timings = details.get("timings")
    if isinstance(timings, dict) and "total_ms" in timings:
        pairs.append(
            ("timings", f"first byte {timings['first_byte_ms']} ms, total {timings['total_ms']} ms")
        )
        phases = [
            f"{name} {timings[f'{name}_ms']} ms" for name in _PHASES if f"{name}_ms" in timings
        ]
        if phases:
            pairs.append(("phases", ", ".join(phases)))
    return pairs


def render_run(data: dict[str, Any], width: int | None = None) -> str:
    from jobctl.output import key_values
    from jobctl.timeutil import format_duration

    def when(text: str | None) -> str | None:
        if not text:
            return None
        from jobctl.timeutil import local_text

        return local_text(datetime.fromisoformat(text.replace("Z", "+00:00")))

    details = data.get("details") or {}
    pairs: list[tuple[str, object]] = [
        ("run", data["id"]),
        ("job", data["job"] if data["job"] is not None else _adhoc_text(data.get("adhoc"))),
        ("trigger", data["trigger"]),
        *([("rerun of", data["rerun_of"])] if data.get("rerun_of") else []),
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
        tokens = _usage_text(details["usage"])
        if details.get("usage_estimated"):  # the server streamed no usage: ~4 characters each
            tokens = f"about {tokens} (estimated: the server reported none)"
        pairs.append(("tokens", tokens))
    if details.get("latency_ms") is not None:
        pairs.append(("latency", f"{details['latency_ms']} ms"))
    if "delivery" in details:
        pairs.append(("delivery", _delivery_text(details["delivery"])))
    pairs += _http_pairs(details)
    text = key_values(pairs, width=width)
    snapshot = data.get("snapshot")
    if snapshot:
        text += "\n\nrequest:\n" + _indent_mapping(snapshot, width)
    if data.get("steps"):
        text += "\n\nsteps:\n" + "\n".join(_step_lines(data["steps"]))
    if details.get("response_headers"):
        text += "\n\nresponse headers:\n" + _indent_mapping(details["response_headers"], width)
    if data["output"]:
        text += "\n\noutput:\n" + data["output"].rstrip("\n")
    return text


def _step_lines(steps: list[dict[str, Any]]) -> list[str]:
    """A team run's steps: one line each with its figures, then its error or its answer's
    beginning."""
    lines: list[str] = []
    for step in steps:
        if step.get("approve") is not None:
            note = f": {step['note']}" if step.get("note") else ""
            lines.append(f"  {step.get('n')}. approval: {step.get('status')}{note}")
            lines.append(f"     {step['approve']}")
            continue
        figures = [str(step.get("status"))]
        if step.get("model"):
            figures.append(str(step["model"]))
        if step.get("latency_ms") is not None:
            figures.append(f"{step['latency_ms']} ms")
        if step.get("tokens_in") is not None or step.get("tokens_out") is not None:
            tokens_in = "?" if step.get("tokens_in") is None else step["tokens_in"]
            tokens_out = "?" if step.get("tokens_out") is None else step["tokens_out"]
            figures.append(f"{tokens_in} in + {tokens_out} out")
        if step.get("finish_reason"):
            figures.append(f"finish {step['finish_reason']}")
        lines.append(f"  {step.get('n')}. {step.get('agent')}: {' · '.join(figures)}")
        said = step.get("error") or " ".join(str(step.get("answer") or "").split())
        if said:
            lines.append(f"     {said[:160]}{'…' if len(said) > 160 else ''}")
    return lines


def _adhoc_text(adhoc: object) -> str:
    """`- (ad hoc exec run)` for a run with no job: what kind of action it fired."""
    kind = adhoc.get("action") if isinstance(adhoc, dict) else None
    return f"- (ad hoc {kind} run)" if kind else "-"


def _usage_text(usage: object) -> object:
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


def _delivery_text(delivery: object) -> object:
    """`delivered to URL (HTTP 200)` or `failed to deliver to URL: reason`."""
    if not isinstance(delivery, dict):
        return delivery
    url = delivery.get("url") or "?"
    status = f" (HTTP {delivery['status']})" if delivery.get("status") is not None else ""
    if delivery.get("ok"):
        return f"delivered to {url}{status}"
    reason = f": {delivery['error']}" if delivery.get("error") else ""
    return f"failed to deliver to {url}{status}{reason}"


def _indent_mapping(mapping: Mapping[str, object], width: int | None, indent: str = "  ") -> str:
    """A request snapshot or headers as aligned `key: value` lines under a heading, long
    values wrapped within `width` like the rest of `runs show`; a nested mapping (headers)
    is indented under its key."""
    from jobctl.output import key_values

    lines: list[str] = []
    flat: list[tuple[str, object]] = []

    def flush() -> None:
        room = None if width is None else width - len(indent)
        if flat:
            lines.extend(indent + line for line in key_values(flat, width=room).split("\n"))
            flat.clear()

    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flush()
            lines.append(f"{indent}{key}:")
            lines.append(_indent_mapping(value, width, indent + "  "))
        elif key == "shell" and isinstance(value, bool) and "command" in mapping:
            flat.append((key, "/bin/sh -c" if value else "none (the words are run directly)"))
        else:
            flat.append((str(key), None if value == {} else value))
    flush()
    return "\n".join(lines)
