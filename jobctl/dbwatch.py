"""The daemon's watch over its database: still the file it opened, the lock still its own,
and writable. (A PostgreSQL database is no file: only whether it can be written is watched.)

A database deleted or replaced under the daemon stops it (firing on would write history
nobody reads); one that cannot be written (disk full, I/O error) stops the firing until it
can, logged once when it starts and once a minute while it lasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jobctl.liveness import InstanceLock, file_identity, moved_away
from jobctl.paths import DbLocation
from jobctl.store import StoreError
from jobctl.timeutil import format_duration

if TYPE_CHECKING:
    from jobctl.intake import LoopState

log = logging.getLogger("jobctl.daemon")

_SQLITE_IOERR, _SQLITE_FULL = 10, 13  # primary result codes (extended ones keep the low byte)
WRITE_RETRY = 1.0  # seconds between attempts while the database cannot be written
TROUBLE_LOG_EVERY = 60.0  # one log line a minute while it cannot
FILES_LOST_EXIT = 1  # the database or lock file went away under the daemon


class DatabaseWatch:
    """Keeps `state.write_trouble` up to date; `on_change()` follows each line it logs (for
    the caller to update what it shows: the systemd STATUS line)."""

    def __init__(
        self,
        db_path: DbLocation,
        lock: InstanceLock,
        state: LoopState,
        on_change: Callable[[], None],
    ) -> None:
        self.db_path = db_path
        self.lock = lock
        self.state = state
        self.on_change = on_change
        self.identity = file_identity(db_path) if isinstance(db_path, Path) else None
        self._since = self._logged = 0.0  # monotonic

    def files_lost(self) -> str | None:
        """What happened to the database file or the lock, if either went away (deleted,
        replaced): logged, for the daemon to stop with FILES_LOST_EXIT. Firing on would write
        history nobody reads, and a second daemon may lock the new file; a non-zero exit has
        systemd start one on the right file."""
        problem = self.lock.lost()
        if isinstance(self.db_path, Path) and self.identity is not None:
            problem = moved_away(self.db_path, self.identity, "database file") or problem
        if problem is not None:
            log.critical("%s while the daemon ran: stopping (exit %d)", problem, FILES_LOST_EXIT)
        return problem

    def cannot_write(self, exc: BaseException) -> bool:
        """Is `exc` the database refusing writes (disk full, I/O error)? Logged if news."""
        code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, StoreError) else None
        if code is None or code & 0xFF not in (_SQLITE_FULL, _SQLITE_IOERR):
            return False
        mono = time.monotonic()
        if self.state.write_trouble is None:
            self.state.write_trouble = f"cannot write the database ({exc})"
            self._since = self._logged = mono
            log.error(
                "%s: nothing fires until it can; trying again every %s",
                self.state.write_trouble,
                format_duration(WRITE_RETRY),
            )
        elif mono - self._logged >= TROUBLE_LOG_EVERY:
            self._logged = mono
            log.error("still %s, for %s", self.state.write_trouble, self.trouble_age())
        else:
            return True
        self.on_change()
        return True

    def recovered(self) -> None:
        log.warning("the database can be written again, after %s", self.trouble_age())
        self.state.write_trouble = None
        self.on_change()

    def trouble_age(self) -> str:
        return format_duration(max(1, round(time.monotonic() - self._since)))
