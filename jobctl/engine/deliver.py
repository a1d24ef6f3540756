"""Sending notifications (built as data by engine.notify) in the background.

Each Notice's payloads are POSTed on the Runner's HTTP session; failures are logged and the
answers kept on the run they are about. Never in the way of the loop or of a fire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.engine.notify import dead_man_alerts
from jobctl.store import StoreError

if TYPE_CHECKING:
    from jobctl.engine.notify import Notice
    from jobctl.engine.runner import Runner
    from jobctl.store import Store

log = logging.getLogger("jobctl.daemon")


class Background:
    """Tasks the loop does not wait for (notifications, orphan checks); shutdown gives them
    a moment to finish."""

    def __init__(self, store: Store, runner: Runner, env: Callable[[], Mapping[str, str]]) -> None:
        self.store = store
        self.runner = runner
        self.env = env  # the environment now (SIGHUP re-reads it)
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, notice: Notice | None) -> None:
        if notice is not None and notice.events:
            self.spawn(self._deliver(notice))

    def alert_dead_men(self, now: datetime) -> None:
        """Alert once when a job with --alert-if-no-success has not succeeded for that long."""
        for text, notice in dead_man_alerts(self.store, now):
            log.warning("%s", text)
            self.send(notice)

    async def drain(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    async def _deliver(self, notice: Notice) -> None:
        """POST each payload; log failures; keep the answers on the run they are about."""
        http = self.runner.firers.http
        env = self.env()
        results = await asyncio.gather(
            *(http.post_json(url, payload, env) for url, payload in notice.events)
        )
        for result in results:
            if not result["ok"]:
                log.warning("%s to %s failed: %s", notice.kind, result["url"], result["error"])
        if notice.run_id is None:
            return
        try:
            self.store.record_notifications(notice.run_id, results)
        except StoreError:
            log.exception("recording notification results failed")
