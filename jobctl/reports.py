"""What `list`, `show`, `status` and `runs show --follow` print as JSON, built in one place
so that the CLI and the web side (API and dashboard) answer with the same objects."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobctl.paths import DbLocation

from datetime import datetime
from typing import Any

from jobctl.models import Job, OutputPiece
from jobctl.paths import DbLocation
from jobctl.store import Store
from jobctl.timeutil import iso_z


def job_listing(
    store: Store, now: datetime, jobs: list[Job] | None = None
) -> list[dict[str, object]]:
    """`jobctl list --json`: each job with its recent stats and its run in flight."""
    from jobctl.catalog import list_jobs
    from jobctl.current_runs import current_runs
    from jobctl.history import LIST_STATS_WINDOW, jobs_stats, stats_to_dict
    from jobctl.jobs import job_to_dict

    if jobs is None:
        jobs = list_jobs(store)
    current = current_runs(store, now)
    stats = jobs_stats(store, jobs, LIST_STATS_WINDOW)
    return [
        job_to_dict(job) | stats_to_dict(stat) | {"current_run": current.get(job.id or 0)}
        for job, stat in zip(jobs, stats, strict=True)
    ]


def job_report(store: Store, job: Job, now: datetime) -> dict[str, Any]:
    """`jobctl show NAME --json`: the job, its stats, chains, webhook, run in flight and its
    next 5 fire times (none while it is not enabled)."""
    from jobctl import hooks
    from jobctl.budgets import job_budgets
    from jobctl.catalog import chains_of
    from jobctl.current_runs import current_runs
    from jobctl.history import job_stats, stats_to_dict
    from jobctl.jobs import job_to_dict

    data = job_to_dict(job) | stats_to_dict(job_stats(store, job))
    data["after"] = chains_of(store, job.id or 0)
    data["webhook"] = hooks.is_enabled(store, job)
    data["current_run"] = current_runs(store, now).get(job.id or 0)
    data["upcoming"] = [iso_z(moment) for moment in upcoming_fires(job, now)]
    data["budgets"], data["token_use"] = job_budgets(store, job, now)
    if job.action == "http":
        from jobctl.http_stats import http_timing_stats

        data["http_timings"] = http_timing_stats(store, job)
    return data


def upcoming_fires(job: Job, now: datetime, count: int = 5) -> list[datetime]:
    """The next `count` fire times of an enabled job (none for a paused or completed one)."""
    from jobctl.schedule import fire_times

    timetable = job.build_schedule() if job.state == "enabled" else None
    return fire_times(timetable, now, count) if timetable is not None else []


def status_report(store: Store, db_path: DbLocation, now: datetime) -> dict[str, Any]:
    """`jobctl status --json`: the daemon, jobs by state, the last 24 hours, runs in flight."""
    from jobctl.approvals import waiting_runs
    from jobctl.budgets import all_budgets
    from jobctl.current_runs import in_flight
    from jobctl.fleet_view import fleet_summary
    from jobctl.history import status_summary
    from jobctl.liveness import daemon_problem, daemon_running

    summary = status_summary(store, now, daemon_running=daemon_running(store, db_path))
    summary["daemon"]["problem"] = daemon_problem(store, db_path, now)
    summary["in_flight"] = in_flight(store, now)
    summary["budgets"] = all_budgets(store, now)
    summary.update(fleet_summary(store, now, running=summary["daemon"]["running"]))
    summary["waiting"] = waiting_runs(store)
    return summary


def piece_to_dict(piece: OutputPiece) -> dict[str, object]:
    """A piece of a run's output as `runs show --follow --json` prints it."""
    return {
        "run": piece.run_id,
        "seq": piece.seq,
        "stream": piece.stream,
        "at": iso_z(piece.at),
        "text": piece.text,
    }


class ListingCache:
    """`list --json` entries kept between requests of a long-lived reader (the web side):
    an entry is built again only when what it is made of moved (see
    `Store.listing_versions`); a job with a run in flight is always built afresh, and
    `current_run` always is. On 1,000 jobs this turns ~100 ms into ~15."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[tuple[object, ...], dict[str, Any]]] = {}

    def listing(self, store: Store, now: datetime) -> list[dict[str, Any]]:
        from jobctl.catalog import load_agent_timeouts
        from jobctl.current_runs import current_runs
        from jobctl.history import LIST_STATS_WINDOW, jobs_stats, stats_to_dict
        from jobctl.jobs import job_to_dict

        versions = store.listing_versions(LIST_STATS_WINDOW)
        stale = [
            job_id
            for job_id, version in versions
            if version[-1] or self._entries.get(job_id, ((), {}))[0] != version
        ]
        fresh = store.jobs_by_id(stale) if stale else []
        load_agent_timeouts(store, fresh)
        stats = jobs_stats(store, fresh, LIST_STATS_WINDOW)
        built = {
            job.id or 0: job_to_dict(job) | stats_to_dict(stat)
            for job, stat in zip(fresh, stats, strict=True)
        }
        current = current_runs(store, now)
        listed = []
        entries: dict[int, tuple[tuple[object, ...], dict[str, Any]]] = {}
        for job_id, version in versions:
            entry = built.get(job_id)
            if entry is None:
                if job_id not in self._entries:
                    continue  # removed since the versions were read
                entry = self._entries[job_id][1]
            entries[job_id] = (version, entry)
            listed.append(entry | {"current_run": current.get(job_id)})
        self._entries = entries  # removed jobs go with it
        return listed
