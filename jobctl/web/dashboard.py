"""The dashboard at `/`: the overview, the jobs, a job and a run, rendered on the server with
Jinja2 (autoescaping on) from the same core functions as the CLI. Each page's live part is
fetched again (`?fragment=1`) when the event stream says something happened; buttons call
the API. Templates and static files ship inside the package."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from jobctl.errors import JobctlError, NotFound
from jobctl.timeutil import format_duration, humanize_delta, iso_z, local_text, utcnow
from jobctl.web import dashboard_charts as charts
from jobctl.web import dashboard_views as views
from jobctl.web.auth import csrf_token
from jobctl.web.context import WebContext

HERE = Path(__file__).parent
TIMELINE_RUNS = 2000  # runs read per timeline window (a job firing every second has more)
ENVIRONMENT = web.AppKey("jobctl_dashboard_templates", jinja2.Environment)
# The context again under a key of this module's own: importing jobctl.web.app's would make
# an import cycle (app imports the parts it mounts).
CONTEXT = web.AppKey("jobctl_dashboard_context", WebContext)


def install(app: web.Application, context: WebContext) -> None:
    """Register the pages and /static/ on `app`."""
    app[ENVIRONMENT] = _environment()
    app[CONTEXT] = context
    app.router.add_get("/", overview_page)
    app.router.add_get("/jobs", jobs_page)
    app.router.add_get("/jobs/{name}", job_page)
    app.router.add_get("/runs/{run_id}", run_page)
    app.router.add_static("/static/", HERE / "static", append_version=False)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["iso"] = _iso
    environment.filters["local"] = _local
    environment.filters["ms"] = _milliseconds
    environment.filters["percent"] = _percent
    environment.filters["label"] = _label
    environment.filters["shown"] = _shown
    return environment


def _moment(moment: datetime | str | None) -> datetime | None:
    """A time as the views give it (a datetime, or the JSON's ISO text)."""
    if isinstance(moment, str):
        return datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment


def _iso(moment: datetime | str | None) -> str:
    return iso_z(_moment(moment)) or ""


def _local(moment: datetime | str | None) -> str:
    value = _moment(moment)
    return local_text(value) if value is not None else "-"


def _ago(moment: datetime | str | None, now: datetime) -> str:
    value = _moment(moment)
    return humanize_delta(value, now) if value is not None else "-"


def _milliseconds(value: int | None) -> str:
    return "-" if value is None else format_duration(value / 1000)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _label(word: object) -> str:
    """A status or state for people: `timed_out` reads `timed out`."""
    return str(word).replace("_", " ") if word is not None else "-"


def _shown(value: object) -> str:
    """A value of a run's request or response for people: none as `-`, a flag as yes/no."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    """The page, or only its live part when the page's script asks for it."""
    environment = request.app[ENVIRONMENT]
    now = utcnow()
    values |= {
        "now": now,
        "ago": lambda moment: _ago(moment, now),
        "csrf": csrf_token(request),
        "fragment": request.query.get("fragment") == "1",
        "path": request.path,
    }
    html = environment.get_template(template).render(values)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _not_found(request: web.Request, error: JobctlError) -> web.Response:
    return _render(request, "error.html", status=404, title="Not found", message=str(error))


async def overview_page(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    trouble = context.host.health().write_trouble
    data = views.overview(context.store, utcnow(), trouble)
    return _render(request, "overview.html", title="Overview", data=data)


async def jobs_page(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    state = request.query.get("state", "")
    where = views.JobsFilter(state if state in views.JOB_STATES else "", request.query.get("q", ""))
    after = request.query.get("after", "")
    page = views.jobs_rows(context.store, utcnow(), where, after)
    return _render(
        request,
        "jobs.html",
        title="Jobs",
        rows=page.rows,
        page=page,
        after=after,
        filters=urlencode({"state": where.state, "q": where.q}),
        where=where,
        states=views.JOB_STATES,
    )


async def job_page(request: web.Request) -> web.Response:
    store = request.app[CONTEXT].store
    now = utcnow()
    try:
        job, data = views.job_page(store, request.match_info["name"], now)
    except NotFound as error:
        return _not_found(request, error)
    before = _int_or_none(request.query.get("before"))
    history, next_cursor = views.history_page(store, job, before)
    week = views.recent_runs(store, job, now - timedelta(days=7, hours=1), TIMELINE_RUNS)
    truncated = len(week) == TIMELINE_RUNS
    timelines = [
        charts.timeline(week, now, timedelta(hours=24), "last 24 hours", truncated=truncated),
        charts.timeline(week, now, timedelta(days=7), "last 7 days", truncated=truncated),
    ]
    return _render(
        request,
        "job.html",
        title=job.name,
        job=data,
        history=history,
        next_cursor=next_cursor,
        before=before,
        timelines=timelines,
        lanes=charts.LANES,
        durations=charts.duration_chart(week),
    )


async def run_page(request: web.Request) -> web.Response:
    store = request.app[CONTEXT].store
    run_id = _int_or_none(request.match_info["run_id"])
    try:
        if run_id is None:
            raise NotFound(f"no run with id {request.match_info['run_id']} (see `jobctl runs`)")
        data = views.run_page(store, run_id)
    except NotFound as error:
        return _not_found(request, error)
    return _render(request, "run.html", title=f"Run {run_id}", run=data)


def _int_or_none(text: str | None) -> int | None:
    if text is None or not text.isdigit() or len(text) > 18:
        return None
    return int(text)
