"""/api/v1/jobs: list, create, get, change, delete, pause, resume, run now, next fires, and
a job's runs (list and clear), answering as `list`, `show`, `next` and `runs` do."""

from __future__ import annotations

from aiohttp import web

from jobctl.errors import Failed, InvalidInput
from jobctl.models import Job, JobState
from jobctl.web.api_common import (
    LISTING,
    PREFIX,
    answer,
    context_of,
    json_body,
    now,
    query_flag,
    query_int,
    store_of,
)

routes = web.RouteTableDef()
JOB = PREFIX + "/jobs/{name}"


def _job(request: web.Request) -> Job:
    from jobctl.catalog import get_job

    return get_job(store_of(request), request.match_info["name"])


def _report(request: web.Request, job: Job, status: int = 200) -> web.Response:
    from jobctl.catalog import get_job
    from jobctl.reports import job_report

    store = store_of(request)
    fresh = get_job(store, job.name)  # as stored, with its agent's timeout
    return answer(job_report(store, fresh, now()), status)


@routes.get(PREFIX + "/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """`jobctl list --json`, narrowed by ?state= and ?q= (a part of the name)."""
    state = request.query.get("state")
    if state is not None and state not in tuple(JobState):
        raise InvalidInput(f"invalid state {state!r}: choose enabled, paused or completed")
    text = request.query.get("q", "").lower()
    listing = request.app[LISTING].listing(store_of(request), now())
    return answer(
        [
            entry
            for entry in listing
            if (state is None or entry["state"] == state) and text in entry["name"].lower()
        ]
    )


@routes.post(PREFIX + "/jobs")
async def create_job(request: web.Request) -> web.Response:
    """A `[[jobs]]` entry as JSON, added as `jobctl add` adds (201 + `show --json`)."""
    from jobctl.catalog import add_job
    from jobctl.file_entries import entry_change

    change = entry_change(await json_body(request))
    job = add_job(store_of(request), change, now())
    context_of(request).wake()
    response = _report(request, job, 201)
    response.headers["Location"] = f"{PREFIX}/jobs/{job.name}"
    return response


@routes.get(JOB)
async def show_job(request: web.Request) -> web.Response:
    """`jobctl show NAME --json`."""
    return _report(request, _job(request))


@routes.patch(JOB)
async def change_job(request: web.Request) -> web.Response:
    """The keys given replace the job's, as `jobctl edit` does."""
    from jobctl.catalog import edit_job
    from jobctl.job_patches import patch_change

    patch = await json_body(request)
    store = store_of(request)
    change = patch_change(_job(request), patch)
    job = edit_job(store, request.match_info["name"], change, now())
    context_of(request).wake()
    return _report(request, job)


@routes.delete(JOB)
async def delete_job(request: web.Request) -> web.Response:
    """`jobctl rm NAME --yes` (?force=true: even with a run in flight); 204."""
    from jobctl.catalog import remove_jobs

    force = query_flag(request, "force")
    remove_jobs(store_of(request), [request.match_info["name"]], force=force)
    context_of(request).wake()
    return web.Response(status=204)


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    from jobctl.catalog import set_paused

    (job,) = set_paused(store_of(request), [request.match_info["name"]], paused, now())
    context_of(request).wake()
    return _report(request, job)


@routes.post(JOB + "/pause")
async def pause_job(request: web.Request) -> web.Response:
    """`jobctl pause NAME`; 200 + the job."""
    return await _set_paused(request, True)


@routes.post(JOB + "/resume")
async def resume_job(request: web.Request) -> web.Response:
    """`jobctl resume NAME`; 200 + the job."""
    return await _set_paused(request, False)


@routes.post(JOB + "/run")
async def run_job(request: web.Request) -> web.Response:
    """`jobctl run NAME --queue`: 202 {"job", "run"}; 409 when overlap skip skipped it."""
    from jobctl.engine import queue_manual

    name = _job(request).name
    run_id, status = queue_manual(store_of(request), name, now())
    if status == "skipped":
        raise Failed(f"run {run_id} of {name} skipped: a run is in flight (overlap skip)")
    context_of(request).wake()
    return answer({"job": name, "run": run_id}, 202)


@routes.get(JOB + "/next")
async def next_fires(request: web.Request) -> web.Response:
    """`jobctl next NAME -n N --json` (N from 1 to 1000, default 5)."""
    from jobctl.schedule import fire_times
    from jobctl.timeutil import iso_z

    count = query_int(request, "n", 5, low=1, high=1000)
    job = _job(request)
    timetable = job.build_schedule()
    if timetable is None:
        raise InvalidInput(f"job {job.name!r} is manual-only: it has no fire times")
    return answer([iso_z(moment) for moment in fire_times(timetable, now(), count)])


@routes.get(JOB + "/runs")
async def job_runs(request: web.Request) -> web.Response:
    """`jobctl runs NAME --json`, paged as /runs is."""
    from jobctl.web.api_runs import runs_page

    if "job" in request.query or "adhoc" in request.query:
        raise InvalidInput("the job is in the path: give ?job= and ?adhoc= only to /runs")
    return runs_page(request, _job(request).name)


@routes.delete(JOB + "/runs")
async def clear_job_runs(request: web.Request) -> web.Response:
    """`jobctl runs clear NAME --yes`: 200 {"job", "deleted"}."""
    from jobctl.history import clear_runs

    name = _job(request).name
    deleted = clear_runs(store_of(request), name)
    return answer({"job": name, "deleted": deleted})
