"""The web side's dashboard (see jobctl.web): filled in by issue 15."""

from __future__ import annotations

from aiohttp import web

from jobctl.web.context import WebContext


def install(app: web.Application, context: WebContext) -> None:
    """Register this part's middlewares and routes on `app`."""
