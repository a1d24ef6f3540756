"""How runs in flight look beside a job and in `status`: run id, how long so far, when it
started, and the last line of output it has produced."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def elapsed_text(item: dict[str, Any]) -> str:
    """`1m30s so far` from a `current_run` (or `in_flight`) object's `elapsed_ms`."""
    from jobctl.timeutil import format_duration

    if item["elapsed_ms"] is None:
        return "not started"
    return f"{format_duration(round(item['elapsed_ms'] / 1000))} so far"


def started_text(item: dict[str, Any]) -> str | None:
    from jobctl.timeutil import local_text

    text = item["started_at"]
    return local_text(datetime.fromisoformat(text.replace("Z", "+00:00"))) if text else None


def current_run_pairs(current: dict[str, Any] | None) -> list[tuple[str, object]]:
    """`show NAME`'s lines for the job's run in flight (none when there is none)."""
    if current is None:
        return []
    from jobctl.output import visible

    line = current["last_line"]
    return [
        (
            "running now",
            f"run {current['id']} · {elapsed_text(current)} · since {started_text(current)}",
        ),
        ("  last output", visible(line) if line is not None else "(none yet)"),
    ]


def in_flight_text(items: list[dict[str, Any]], width: int | None) -> str:
    """`in flight:` and one line per run: job, run id, how long so far, its last line
    (cut to the width on a terminal)."""
    from jobctl.output import visible

    names = [item["job"] if item["job"] is not None else "-" for item in items]
    name_width = max((len(name) for name in names), default=0)
    lines = ["in flight:"]
    for name, item in zip(names, items, strict=True):
        line = f"  {name:<{name_width}}  run {item['run']} · {elapsed_text(item)}"
        if item["last_line"] is not None:
            line += f" · {visible(item['last_line'])}"
        if width is not None and len(line) > width:
            line = line[: max(width - 1, 0)] + "…"
        lines.append(line)
    return "\n".join(lines)
