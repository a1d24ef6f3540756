"""Is a daemon running on this database? The lock and the heartbeat, without asyncio.

`status`, `run --queue` and `daemon stop` ask this; importing the daemon module for it
would cost them asyncio's start-up. A PostgreSQL database has no lock file (several daemons
may share it: rows are claimed with row locks); there the heartbeat alone tells.
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from jobctl import runs
from jobctl.errors import DaemonUnavailable
from jobctl.paths import DbLocation, PostgresUrl, lock_path
from jobctl.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from jobctl.store import Store

HEARTBEAT_FRESH = timedelta(seconds=15)


class InstanceLock:
    """The single-instance lock: `<database>.lock` holding the owner's pid and host.

    None on PostgreSQL (`path` None): taking, keeping and releasing it do nothing there."""

    def __init__(self, db_path: DbLocation) -> None:
        self.path = lock_path(db_path) if isinstance(db_path, Path) else None
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DaemonUnavailable(
                f"another daemon ({holder}) already holds {self.path.with_suffix('')}"
            ) from None
        self._handle = handle
        self.write_owner()

    def write_owner(self) -> None:
        """Record this process as the holder (again after a fork hands the lock on)."""
        if self.path is None:
            return
        assert self._handle is not None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"pid {os.getpid()} on {runs.HOST}\n")
        self._handle.flush()

    def lost(self) -> str | None:
        """Why this process no longer holds the lock its path names (deleted or replaced
        file: a second daemon could lock the new one), or None while it does."""
        if self.path is None:
            return None
        assert self._handle is not None
        return moved_away(self.path, file_identity(self._handle.fileno()), "lock file")

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @staticmethod
    def is_held(db_path: Path) -> bool:
        """True when some process holds the lock (checked without taking it for long)."""
        path = lock_path(db_path)
        if not path.exists():
            return False
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False


FileIdentity = tuple[int, int]  # (st_dev, st_ino)


def file_identity(file: Path | int) -> FileIdentity:
    """The device and inode of an open file descriptor or of a path."""
    stat = os.fstat(file) if isinstance(file, int) else os.stat(file)
    return stat.st_dev, stat.st_ino


def moved_away(path: Path, identity: FileIdentity, what: str) -> str | None:
    """None while `path` still names the file `identity` was taken from, else what happened."""
    try:
        current = file_identity(path)
    except FileNotFoundError:
        return f"the {what} {path} was deleted"
    except OSError as exc:
        return f"the {what} {path} cannot be checked: {exc.strerror}"
    if current != identity:
        return f"the {what} {path} was replaced by another file"
    return None


def heartbeat_age(store: Store, now: datetime) -> timedelta | None:
    """How long ago the running daemon's heartbeat beat; None if it stopped or never ran."""
    row = store.daemon_row()
    if row is None or row.stopped_at:
        return None
    return now - row.last_tick_at


def daemon_running(store: Store, db_path: DbLocation) -> bool:
    """A daemon holds the database's lock (a file's) and its heartbeat is fresh."""
    age = heartbeat_age(store, utcnow())
    fresh = age is not None and age <= HEARTBEAT_FRESH
    if isinstance(db_path, PostgresUrl):
        return fresh
    return InstanceLock.is_held(db_path) and fresh


def daemon_problem(store: Store, db_path: DbLocation, now: datetime) -> str | None:
    """What keeps a daemon that holds the lock from working, as far as a reader can tell.

    A daemon that cannot write the database cannot say so in it; a reader sees the heartbeat
    go stale while the lock stays held, and can look at the free space itself. (On
    PostgreSQL there is no lock to tell a stuck daemon from a dead one: no problem is told.)
    """
    if isinstance(db_path, PostgresUrl) or not InstanceLock.is_held(db_path):
        return None
    age = heartbeat_age(store, now)
    since = None
    if age is not None and age > HEARTBEAT_FRESH:
        since = f"its last heartbeat was {format_duration(round(age.total_seconds()))} ago"
    if filesystem_full(db_path):
        text = "the filesystem holding the database is full: runs cannot be recorded"
        return f"{text} ({since})" if since else text
    if since:
        return f"it holds the lock but {since}: stuck, or unable to write the database"
    return None


def filesystem_full(db_path: Path) -> bool:
    try:
        stat = os.statvfs(db_path.parent)
    except OSError:
        return False
    return stat.f_bavail == 0
