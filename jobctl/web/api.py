"""The REST API under /api/v1: the CLI's operations over HTTP with the CLI's JSON.

Errors are `{"error": "the CLI's message"}` with the status of the CLI's exit code: bad
input 400, not found 404, refused in the current state 409, a database that cannot be
written 503. The routes live in api_jobs, api_runs and api_events; the OpenAPI document
that describes them in openapi.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from jobctl.errors import DaemonUnavailable, Failed, InvalidInput, JobctlError, NotFound
from jobctl.reports import ListingCache
from jobctl.store import StoreError
from jobctl.web.api_common import LISTING, PREFIX, answer, error_answer
from jobctl.web.context import WebContext

log = logging.getLogger("jobctl.daemon")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS: list[tuple[type[JobctlError], int]] = [
    (InvalidInput, 400),
    (NotFound, 404),
    (DaemonUnavailable, 503),
    (Failed, 409),
]


def status_for(error: JobctlError) -> int:
    """The HTTP status for a CLI error: its exit code's meaning."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 409


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/: the CLI's errors as JSON bodies with their status; aiohttp's own
    (unknown route, wrong method) as JSON too."""
    if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
        return await handler(request)
    try:
        return await handler(request)
    except JobctlError as error:
        return error_answer(str(error), status_for(error))
    except StoreError as error:
        log.warning("api: the database failed: %s", error)
        return error_answer(f"the database cannot be written: {error}", 503)
    except web.HTTPMethodNotAllowed as error:
        return answer(
            {"error": f"method {request.method} is not allowed here"},
            405,
            {"Allow": ", ".join(sorted(error.allowed_methods))},
        )
    except web.HTTPNotFound:
        return error_answer(f"no such API path {request.path!r}", 404)


def install(app: web.Application, context: WebContext) -> None:
    """Register the API's error middleware and every /api/v1 route on `app`."""
    from jobctl.web import api_events, api_jobs, api_runs, openapi

    app.middlewares.append(api_errors)
    app[LISTING] = ListingCache()
    api_events.install_streams(app)
    app.router.add_routes(api_jobs.routes)
    app.router.add_routes(api_runs.routes)
    app.router.add_routes(api_events.routes)
    app.router.add_get(PREFIX + "/openapi.json", openapi.serve)
