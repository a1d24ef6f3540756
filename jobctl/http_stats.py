"""Response times of an HTTP job over its kept history: p50 and p95 of the total time and of
the time to the first byte, from the timings its runs recorded (`show`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jobctl.models import ActionKind, Job, RunSelection, RunStatus
from jobctl.store import Store

HTTP_STATS_WINDOW = 1000  # the newest runs looked at (the default `--keep`)
_ANSWERED = (RunStatus.SUCCEEDED, RunStatus.FAILED)


def http_timing_stats(store: Store, job: Job, window: int = HTTP_STATS_WINDOW) -> dict[str, Any]:
    """{"runs": n, "total_ms": {"p50", "p95"}, "first_byte_ms": {...}}; the percentiles are
    None while no run recorded timings. Only runs that got a response count."""
    assert job.action == ActionKind.HTTP and job.id is not None
    runs = store.list_runs(RunSelection(job_id=job.id, statuses=_ANSWERED, limit=window))
    totals: list[float] = []
    first_bytes: list[float] = []
    for run in runs:
        timings = json.loads(run.details).get("timings") if run.details else None
        if isinstance(timings, dict) and isinstance(timings.get("total_ms"), int | float):
            totals.append(timings["total_ms"])
            first_bytes.append(timings.get("first_byte_ms") or 0.0)
    return {
        "runs": len(totals),
        "total_ms": _percentiles(totals),
        "first_byte_ms": _percentiles(first_bytes),
    }


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {"p50": _rank(ordered, 0.50), "p95": _rank(ordered, 0.95)}


def _rank(ordered: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (as `show` computes the p95 duration)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


__all__ = ["HTTP_STATS_WINDOW", "http_timing_stats"]
