"""What each dashboard page shows, read from the store through the same core functions as
the CLI (`list`, `show`, `runs show`, `status`): plain dicts for the templates, times as
aware datetimes (the templates format them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobctl.models import Job, Run, RunSelection
from jobctl.store import Store

HISTORY_PAGE = 50
JOBS_PAGE = 100
OUTPUT_BATCH = 1000
JOB_STATES = ("enabled", "paused", "completed")


@dataclass(frozen=True)
class JobsFilter:
    """The jobs page's filters: a state and a substring of the name."""

    state: str = ""
    q: str = ""

    def keeps(self, job: Job) -> bool:
        if self.state and job.state != self.state:
            return False
        return self.q.lower() in job.name.lower()


def overview(store: Store, now: datetime, write_trouble: str | None) -> dict[str, Any]:
    """Daemon health, counts by state, 24-hour failures and missed slots, runs in flight,
    the next fires (`status --json` with the web side's view of the loop)."""
    from jobctl.current_runs import in_flight
    from jobctl.history import status_summary

    summary = status_summary(store, now, daemon_running=True, upcoming=8)
    summary["write_trouble"] = write_trouble
    summary["in_flight"] = in_flight(store, now)
    return summary


@dataclass(frozen=True)
class JobsPage:
    """A page of the jobs table: its rows (`list --json`'s objects), how many jobs the filter
    kept in all, and the name the next page starts after (None on the last)."""

    rows: list[dict[str, object]]
    total: int
    next_after: str | None


def jobs_rows(store: Store, now: datetime, where: JobsFilter, after: str = "") -> JobsPage:
    """The `list --json` rows the filter keeps, by name, JOBS_PAGE of them after the name
    `after`, with their schedule and action as text. Only the page's jobs have their stats
    read: 1,000 rows made a page of 1.6 MB that took 270 ms."""
    from jobctl.catalog import list_jobs
    from jobctl.jobs import action_summary
    from jobctl.reports import job_listing
    from jobctl.schedule import describe

    kept = sorted((job for job in list_jobs(store) if where.keeps(job)), key=lambda j: j.name)
    later = [job for job in kept if job.name > after] if after else kept
    jobs = later[:JOBS_PAGE]
    rows = job_listing(store, now, jobs)
    for job, row in zip(jobs, rows, strict=True):
        row["schedule_text"] = describe(job.schedule_kind, job.schedule)
        row["action_text"] = action_summary(job)
    next_after = jobs[-1].name if len(later) > JOBS_PAGE else None
    return JobsPage(rows, len(kept), next_after)


def job_page(store: Store, name: str, now: datetime) -> tuple[Job, dict[str, Any]]:
    """The job (NotFound if none) and `show --json`'s document, with its next fire times as
    datetimes and its webhook URL when it has one."""
    from jobctl import hooks
    from jobctl.catalog import get_job
    from jobctl.reports import job_report, upcoming_fires
    from jobctl.schedule import describe

    job = get_job(store, name)
    data = job_report(store, job, now)
    data["webhook_url"] = hooks.hook_url(store, job.name, None) if data["webhook"] else None
    data["upcoming"] = upcoming_fires(job, now)
    data["schedule_text"] = describe(job.schedule_kind, job.schedule)
    data["spec_lines"] = spec_lines(job.action, data["spec"])
    data["policy_lines"] = policy_lines(data["policies"])
    return job, data


def spec_lines(action: str, spec: Mapping[str, object]) -> list[tuple[str, str]]:
    """The action's settings as `show` prints them, the ones not set left out."""
    lines = []
    for key, value in spec.items():
        if value is None or value == {} or value == [] or value == "":
            continue
        if isinstance(value, dict):
            text = "; ".join(f"{k}: {v}" for k, v in value.items())
        elif action == "exec" and key == "shell":
            text = "/bin/sh -c" if value else "none (the words are run directly)"
        elif isinstance(value, list):
            text = " ".join(str(item) for item in value)
        else:
            text = str(value)
        lines.append((key, text))
    return lines


def policy_lines(policies: dict[str, Any]) -> list[str]:
    """`timeout 1h`, `retries 0` ...: the effective policies as `show` prints them."""
    from jobctl.policies import as_text

    lines = [f"{key} {as_text(key, value)}" for key, value in policies.items() if key != "notify"]
    lines += [f"notify on {item['on']}: {item['url']}" for item in policies.get("notify", [])]
    return lines


def history_page(store: Store, job: Job, before: int | None) -> tuple[list[Run], int | None]:
    """A page of the job's runs, newest first, with ids below `before`; and the cursor of
    the next page (None on the last). Paged by id, never OFFSET."""
    assert job.id is not None
    runs = store.list_runs(RunSelection(job_id=job.id, before_id=before, limit=HISTORY_PAGE + 1))
    more = len(runs) > HISTORY_PAGE
    runs = runs[:HISTORY_PAGE]
    return runs, runs[-1].id if more else None


def recent_runs(store: Store, job: Job, since: datetime, limit: int) -> list[Run]:
    """The job's runs created since `since`, newest first, at most `limit`: a range of the
    (job, id) index from the first run of the window, found by its key."""
    assert job.id is not None
    first = store.first_run_since(since)
    return store.list_runs(RunSelection(job_id=job.id, after_id=first - 1, limit=limit))


def run_page(store: Store, run_id: int) -> dict[str, Any]:
    """`runs show ID --json` (request redacted as it was stored), with the output so far of a
    run in flight and the run it repeats or that caused it."""
    from jobctl.runs import get_run, run_to_dict

    run = get_run(store, run_id)
    data = run_to_dict(run, full=True)
    data["in_flight"] = run.status.in_flight
    data["caused_by"] = run.caused_by
    if run.status.in_flight:
        data["output"] = live_output(store, run.id)
    # Only a failure is retried (the store's look-up reads the job's runs: ~50 ms on 5M).
    data["next_attempt"] = store.next_attempt_id(run.id) if run.status.failure else None
    return data


def live_output(store: Store, run_id: int) -> str:
    """The output a run in flight has produced so far, every stream in the order it came
    (read in batches; a run's stored output is capped, so this ends)."""
    texts: list[str] = []
    seq = 0
    while True:
        batch = store.output_after(run_id, seq, OUTPUT_BATCH)
        texts += [piece.text for piece in batch]
        if len(batch) < OUTPUT_BATCH:
            return "".join(texts)
        seq = batch[-1].seq
