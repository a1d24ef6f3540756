"""Mounting the web side on the listener's application: who may come in (`auth`), the API
(`api`) and the dashboard (`dashboard`), in that order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from jobctl.web.context import CONTEXT, WebContext

__all__ = ["CONTEXT", "install"]


def install(app: web.Application, context: WebContext) -> None:
    """Add the web side's middlewares and routes to `app` (before it is started)."""
    from jobctl.web import api, auth, dashboard

    app[CONTEXT] = context
    auth.install(app, context)
    api.install(app, context)
    dashboard.install(app, context)
    app.on_cleanup.append(_close(context))


def _close(context: WebContext) -> Callable[[web.Application], Awaitable[None]]:
    async def close(app: web.Application) -> None:
        context.close()

    return close
