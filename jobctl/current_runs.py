"""The runs in flight as `show`, `list` and `status` present them: when each started, how
long it has been running, and the last line of output it has produced so far."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.models import Run

if TYPE_CHECKING:
    from jobctl.store import Store

LAST_LINE_MAX = 200  # characters: a line of output is a glimpse here, not the output


def last_line(text: str | None) -> str | None:
    """The last line of `text` that is not blank, cut to LAST_LINE_MAX characters."""
    for line in reversed((text or "").splitlines()):
        if line.strip():
            line = line.rstrip()
            return line if len(line) <= LAST_LINE_MAX else line[: LAST_LINE_MAX - 1] + "…"
    return None


def running_now(store: Store) -> list[Run]:
    """Every running run, oldest first."""
    return sorted(store.running_runs(), key=lambda run: run.id)


def current_run_dict(run: Run, line: str | None, now: datetime) -> dict[str, Any]:
    """The contract's `current_run` object of a job: its run in flight."""
    from jobctl.timeutil import iso_z

    elapsed = round((now - run.started_at).total_seconds() * 1000) if run.started_at else None
    return {
        "id": run.id,
        "status": run.status,
        "started_at": iso_z(run.started_at),
        "elapsed_ms": max(0, elapsed) if elapsed is not None else None,
        "last_line": line,
    }


def current_runs(store: Store, now: datetime) -> dict[int, dict[str, Any]]:
    """Each job with a run in flight: its `current_run` (the newest, when it has several)."""
    newest: dict[int, Run] = {}
    for run in running_now(store):
        if run.job_id is not None:
            newest[run.job_id] = run
    lines = store.last_output_lines([run.id for run in newest.values()])
    return {
        job_id: current_run_dict(run, last_line(lines.get(run.id)), now)
        for job_id, run in newest.items()
    }


def in_flight(store: Store, now: datetime) -> list[dict[str, Any]]:
    """`status --json`'s `in_flight`: every running run, oldest first, with its job's name
    (null for an ad hoc run)."""
    runs = running_now(store)
    lines = store.last_output_lines([run.id for run in runs])
    items = []
    for run in runs:
        item = current_run_dict(run, last_line(lines.get(run.id)), now)
        items.append({"job": run.job, "run": item.pop("id"), **item})
    return items
