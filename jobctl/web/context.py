"""What the web side needs of the process that serves it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from jobctl.listener_host import ListenerHost
    from jobctl.paths import DbLocation
    from jobctl.store import Store


@dataclass
class WebContext:
    """The database the web side opens its own connection to (never the loop's: a slow page
    must not hold the scheduler), a way to wake the loop after a change (a run queued, a job
    edited), and the listener's host for health and gauges."""

    db_path: DbLocation
    wake: Callable[[], None]
    host: ListenerHost
    listen_url: str = ""  # set once the listener is bound
    _store: Store | None = field(default=None, init=False, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            from jobctl.store import open_store

            self._store = open_store(self.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


# request.app[CONTEXT] in a handler (here, not in jobctl.web.app, so that the parts app.py
# mounts can import it without an import cycle).
CONTEXT = web.AppKey("jobctl_web", WebContext)
