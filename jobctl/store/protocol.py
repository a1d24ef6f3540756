"""The operations every store offers, whatever database holds it.

A second implementation (PostgreSQL) sits beside `jobctl.store.sqlite` and offers these.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from jobctl.models import DaemonRow, Run

if TYPE_CHECKING:
    from jobctl.jobs import Job


class Store(Protocol):
    writable: bool

    def write(self) -> AbstractContextManager[None]:
        """One write transaction: operations called inside join it; rolled back on error."""
        ...

    def close(self) -> None: ...

    # the daemon's heartbeat row
    def daemon_row(self) -> DaemonRow | None: ...
    def heartbeat_start(
        self,
        *,
        pid: int,
        host: str,
        started_at: datetime,
        now: datetime,
        listen: str | None,
        log_file: str | None,
    ) -> None: ...
    def heartbeat(self, now: datetime) -> None: ...
    def heartbeat_stop(self, now: datetime) -> None: ...
    def heartbeat_stop_if_running(self) -> None: ...
    def data_version(self) -> int: ...
    def record_notifications(self, run_id: int, results: Sequence[object]) -> None: ...

    # jobs
    def count_enabled_jobs(self) -> int: ...
    def jobs_due_for_alert(self) -> list[Job]: ...
    def mark_alerted(self, job_id: int, now: datetime) -> None: ...

    # runs
    def get_run(self, run_id: int) -> Run | None: ...
    def running_run_ids(self, pid: int, host: str) -> list[int]: ...
