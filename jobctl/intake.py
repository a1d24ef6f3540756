"""What the daemon's listener sees of it: webhook runs queued in the store, health, gauges.

`Intake` implements listener.ListenerHost over the store, the loop's `LoopState` and the
daemon's `Metrics`, so the listener never holds the daemon itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl import engine
from jobctl.metrics import Gauges, Metrics
from jobctl.timeutil import utcnow

if TYPE_CHECKING:
    from jobctl.listener import Listener
    from jobctl.listener_host import Health
    from jobctl.paths import DbLocation
    from jobctl.store import Store


@dataclass
class LoopState:
    """How the daemon's loop is doing, kept up to date by the loop."""

    started_at: datetime
    last_loop_monotonic: float  # time.monotonic() at the loop's last iteration
    last_tick_wall: datetime  # the wall clock then
    ticks: int = 0  # scheduling steps taken
    write_trouble: str | None = None  # why the database cannot be written now

    def status_line(self, enabled: int, in_flight: int, trouble_for: str) -> str:
        """The systemd STATUS line: jobs, runs, ticks, and what is wrong (for how long)."""
        ticks = self.ticks
        line = (
            f"{enabled} job{'' if enabled == 1 else 's'} enabled, "
            f"{in_flight} run{'' if in_flight == 1 else 's'} in flight, "
            f"{ticks} tick{'' if ticks == 1 else 's'}"
        )
        if self.write_trouble is not None:
            line = f"{self.write_trouble} for {trouble_for}; {line}"
        return line


class Intake:
    """The daemon as the listener sees it (a listener.ListenerHost)."""

    def __init__(
        self,
        store: Store,
        state: LoopState,
        metrics: Metrics,
        in_flight: Sized,
        wake: Callable[[], None],
    ) -> None:
        """`in_flight` holds the runs executing; `wake()` has the loop look again now."""
        self.store = store
        self.state = state
        self.metrics = metrics
        self._in_flight = in_flight
        self._wake = wake

    async def listen(
        self, address: str, metrics_token: str | None, *, db_path: DbLocation | None = None
    ) -> Listener:
        """Start the listener on `address` (HOST:PORT) over this intake; with `db_path`, the
        API and the dashboard too (on a connection of their own to that database)."""

        from jobctl.listener import Listener, parse_listen
        from jobctl.web.context import WebContext

        # The API and dashboard on PostgreSQL wait for the web side to take a DbLocation.
        web = None if db_path is None else WebContext(db_path, self._wake, self)
        listener = Listener(
            self, *parse_listen(address), metrics_token=metrics_token, web_context=web
        )
        await listener.start()
        return listener

    def accept_webhook(
        self,
        name: str,
        payload: str,
        payload_type: str | None = None,
        replay_keys: Sequence[str] = (),
    ) -> tuple[int | None, str]:
        """Queue a webhook run for the loop to fire: see engine.queue_webhook."""
        run_id, status = engine.queue_webhook(
            self.store,
            name,
            utcnow(),
            payload=payload,
            payload_type=payload_type,
            replay_keys=replay_keys,
        )
        if status in ("queued", "skipped"):
            self._wake()
        return run_id, status

    def webhook_secret(self, name: str) -> str | None:
        from jobctl.hooks import secret_for

        return secret_for(self.store, name)

    def health(self) -> Health:
        from jobctl.listener_host import Health

        state = self.state
        return Health(state.last_loop_monotonic, state.last_tick_wall, state.write_trouble)

    def gauges(self) -> Gauges:
        states = {str(state): count for state, count in self.store.job_state_counts().items()}
        return Gauges(
            self.state.started_at,
            self.state.ticks,
            len(self._in_flight),
            states,
            self.store.last_successes(),
        )
