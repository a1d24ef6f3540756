"""What the listener (and the web side on it) needs of the process it serves: the daemon's
`Intake` implements `ListenerHost`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jobctl.metrics import Gauges, Metrics


@dataclass(frozen=True)
class Health:
    """How the loop is doing, for /healthz."""

    last_loop_monotonic: float  # time.monotonic() at the loop's last iteration
    last_tick_at: datetime  # the wall clock then
    write_trouble: str | None  # why the database cannot be written now, if it cannot


class ListenerHost(Protocol):
    """What the listener needs of the process it serves (jobctl.daemon.Daemon has it)."""

    @property
    def metrics(self) -> Metrics: ...

    def webhook_secret(self, name: str) -> str | None:
        """The secret of job `name`'s webhook; None for no such job or no webhook."""
        ...

    def accept_webhook(
        self, name: str, payload: str, payload_type: str | None, replay_keys: Sequence[str]
    ) -> tuple[int | None, str]:
        """Queue a run of job `name`: (run id, status); raises NotFound."""
        ...

    def health(self) -> Health: ...

    def gauges(self) -> Gauges: ...
