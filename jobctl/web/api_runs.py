"""/api/v1/runs: the history paged by a cursor (`before`, the last id of a page: never an
OFFSET), one run, its output after a piece, cancel and rerun."""

from __future__ import annotations

from aiohttp import web

from jobctl.errors import Failed, InvalidInput
from jobctl.web.api_common import (
    PREFIX,
    answer,
    context_of,
    now,
    query_flag,
    query_int,
    query_list,
    run_id_of,
    store_of,
)

routes = web.RouteTableDef()
RUN = PREFIX + "/runs/{id}"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
PIECES_PER_PAGE = 1000


def runs_page(request: web.Request, job: str | None) -> web.Response:
    """A page of runs, newest first, as `runs --json` lists them; a full page links to the
    next one (`Link: <...?before=ID>; rel="next"`)."""
    from jobctl.history import RunFilter, list_runs, parse_moment, validate_filter_values
    from jobctl.runs import run_to_dict

    statuses, triggers = query_list(request, "status"), query_list(request, "trigger")
    validate_filter_values(statuses, triggers)
    adhoc = query_flag(request, "adhoc")
    if adhoc and job is not None:
        raise InvalidInput("--adhoc lists the runs that have no job: give it without NAME")
    moment = now()
    since, until = request.query.get("since"), request.query.get("until")
    limit = query_int(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    before = query_int(request, "before", 0, low=1) if "before" in request.query else None
    where = RunFilter(
        job=job,
        statuses=statuses,
        triggers=triggers,
        adhoc=adhoc,
        limit=limit,
        since=parse_moment(since, moment, what="--since") if since else None,
        until=parse_moment(until, moment, what="--until") if until else None,
        before_id=before,
    )
    runs = list_runs(store_of(request), where)
    headers = {}
    if len(runs) == limit:
        following = request.rel_url.update_query(before=str(runs[-1].id))
        headers["Link"] = f'<{following}>; rel="next"'
    return answer([run_to_dict(run) for run in runs], headers=headers)


@routes.get(PREFIX + "/runs")
async def list_runs(request: web.Request) -> web.Response:
    """`jobctl runs --json`: ?job= ?status= ?trigger= ?since= ?until= ?adhoc= ?limit=
    ?before=."""
    return runs_page(request, request.query.get("job") or None)


@routes.get(RUN)
async def show_run(request: web.Request) -> web.Response:
    """`jobctl runs show ID --json`."""
    from jobctl.runs import get_run, run_to_dict

    return answer(run_to_dict(get_run(store_of(request), run_id_of(request)), full=True))


@routes.get(RUN + "/output")
async def run_output(request: web.Request) -> web.Response:
    """The run's output pieces after seq ?after= (at most 1000), as `runs show --follow
    --json` prints them. A finished run whose pieces are gone answers its whole output as
    one piece of seq 0."""
    from jobctl.reports import piece_to_dict
    from jobctl.runs import get_run

    store = store_of(request)
    run = get_run(store, run_id_of(request))
    after = query_int(request, "after", 0)
    pieces = store.output_after(run.id, after, PIECES_PER_PAGE)
    if not pieces and after == 0 and not run.status.in_flight and run.output:
        from jobctl.follow import whole_output

        pieces = [whole_output(run, run.output)]
    return answer([piece_to_dict(piece) for piece in pieces])


@routes.post(RUN + "/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    """`jobctl runs cancel ID --no-wait`: 202 {"run", "status"}; 409 if it has ended."""
    from jobctl.cancels import cancel_run

    asked = cancel_run(store_of(request), run_id_of(request), now())
    context_of(request).wake()
    return answer({"run": asked.run_id, "status": str(asked.status)}, 202)


@routes.post(RUN + "/rerun")
async def rerun(request: web.Request) -> web.Response:
    """`jobctl runs rerun ID`: 202 {"job", "run"}; 409 for an ad hoc run or a skip."""
    from jobctl.engine import queue_rerun
    from jobctl.models import RunStatus

    original = run_id_of(request)
    new_id, status, name = queue_rerun(store_of(request), original, now())
    if status == RunStatus.SKIPPED:
        raise Failed(f"run {new_id} of {name} skipped: a run is in flight (overlap skip)")
    context_of(request).wake()
    return answer({"job": name, "run": new_id, "rerun_of": original}, 202)
