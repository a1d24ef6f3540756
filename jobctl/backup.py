"""`jobctl backup` and `restore`: where the copies go, what is checked, the daemon's lock.

The copying itself (SQLite's online backup API, one self-contained file checked with
`integrity_check`) is the store's: jobctl.store.sqlite.backup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jobctl.errors import DaemonUnavailable, Failed, InvalidInput, NotFound
from jobctl.store import StoreError, open_store_read_only
from jobctl.store.sqlite.backup import (
    OnPages,
    backup_into,
    copy_into_place,
    create_private,
    keep_copy,
    remove_with_sidecars,
)

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    jobs: int
    runs: int


@dataclass(frozen=True)
class DatabaseInfo:
    """What a file holds, as read by `inspect_database`."""

    path: Path
    schema_version: int
    jobs: int
    runs: int


@dataclass(frozen=True)
class RestoreResult:
    db_path: Path
    source: Path
    kept: Path | None  # where the previous database was put aside
    jobs: int
    runs: int
    from_version: int  # the backup's schema version
    to_version: int  # after migrating


# ------------------------------------------------------------------------ reading safely


def read_header(path: Path) -> bytes:
    """The first 100 bytes of the file (the SQLite header), or fewer for a short file."""
    with open(path, "rb") as handle:
        return handle.read(100)


def is_wal_header(header: bytes) -> bool:
    """Bytes 18 and 19 (file format write/read version) are 2 in WAL mode."""
    return len(header) >= 20 and header[18] == 2 and header[19] == 2


def inspect_database(path: Path) -> DatabaseInfo:
    """Check that `path` is a sound jobctl database this version can use (Failed if not)."""
    from jobctl.store.sqlite import SCHEMA_VERSION

    if not path.exists():  # bad input, as `apply -f` of a missing file
        raise InvalidInput(f"no such file: {path}")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    try:
        header = read_header(path)
    except OSError as exc:
        raise Failed(f"cannot read {path}: {exc.strerror}") from None
    if not header.startswith(SQLITE_MAGIC):
        raise Failed(f"{path} is not an SQLite database")
    try:
        store = open_store_read_only(path)
    except StoreError as exc:
        raise Failed(f"{path} cannot be opened: {exc}") from None
    try:
        problems = store.integrity_problems()
        if problems:
            raise Failed(f"{path} is damaged (integrity check: {problems[0]})")
        if not store.has_table("jobs") or not store.has_table("runs"):
            raise Failed(f"{path} is an SQLite database but not a jobctl one")
        version = store.schema_version()
        if version > SCHEMA_VERSION:
            raise Failed(
                f"{path} has schema version {version}, newer than this jobctl knows "
                f"({SCHEMA_VERSION}): upgrade jobctl"
            )
        jobs, runs = store.row_counts()
    except StoreError as exc:
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    finally:
        store.close()
    return DatabaseInfo(path, version, jobs, runs)


# --------------------------------------------------------------------------------- backup


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _install(temporary: Path, target: Path, *, force: bool) -> None:
    """Move the finished backup to its name; without `force`, never over an existing file."""
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the name was taken meanwhile
    except FileExistsError:
        raise Failed(f"{target} exists: choose another name, or --force to overwrite it") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise Failed(
                f"{target} exists: choose another name, or --force to overwrite it"
            ) from None
        os.replace(temporary, target)
        return
    temporary.unlink()


def backup_database(
    db_path: Path, target: Path, *, force: bool = False, on_pages: OnPages | None = None
) -> BackupResult:
    """Write a complete, verified copy of the database to `target` (mode 0600); `on_pages`
    is told how far the copy is."""
    if not db_path.is_file():
        raise NotFound(f"no database at {db_path}")
    target = target.expanduser().absolute()
    if target.is_dir():
        raise InvalidInput(f"{target} is a directory: give the backup's file name")
    if (target.exists() or target.is_symlink()) and not force:
        raise Failed(f"{target} exists: choose another name, or --force to overwrite it")
    if target.exists() and target.resolve() == db_path.resolve():
        raise InvalidInput("the backup cannot replace the database itself")
    if not target.parent.is_dir():
        raise InvalidInput(f"no directory {target.parent}")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        create_private(temporary)
    except OSError as exc:
        raise Failed(f"cannot write {target}: {exc.strerror}") from None
    try:
        jobs, runs = backup_into(db_path, temporary, on_pages)
        _install(temporary, target, force=force)
    except BaseException:
        remove_with_sidecars(temporary)
        raise
    _fsync_directory(target.parent)
    return BackupResult(target, target.stat().st_size, jobs, runs)


# -------------------------------------------------------------------------------- restore


def aside_path(db_path: Path, now: datetime) -> Path:
    """`<db>.before-restore-<UTC timestamp>`, with a counter if that name is taken."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    candidate = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = db_path.with_name(f"{db_path.name}.before-restore-{stamp}-{number}")
    return candidate


def _keep_aside(db_path: Path, now: datetime, on_pages: OnPages | None) -> Path:
    """Copy the current database (with what its WAL holds) next to it, mode 0600."""
    kept = aside_path(db_path, now)
    keep_copy(db_path, kept, on_pages)
    return kept


Confirm = Callable[[DatabaseInfo], None]
# How far a restore's copies are: ("keeping" or "restoring", pages copied, pages in all).
OnRestorePages = Callable[[str, int, int], None]


def _phase(on_pages: OnRestorePages | None, phase: str) -> OnPages | None:
    if on_pages is None:
        return None
    return lambda done, total: on_pages(phase, done, total)


def restore_database(
    db_path: Path,
    source: Path,
    now: datetime,
    confirm: Confirm,
    on_pages: OnRestorePages | None = None,
) -> RestoreResult:
    """Replace the database with the backup `source`, keeping the current one aside
    (`on_pages` is told how far each copy is).

    Refused (exit 4) while a daemon holds the database; this process holds the daemon's lock
    meanwhile, so none can start. `confirm` raises to stop before anything changed.
    """
    from jobctl import runs
    from jobctl.liveness import InstanceLock
    from jobctl.store.sqlite import open_store, require_writable

    require_writable(db_path)
    source = source.expanduser().absolute()
    info = inspect_database(source)
    if db_path.exists() and source.resolve() == db_path.resolve():
        raise InvalidInput(f"{source} is the database itself")
    lock = InstanceLock(db_path)
    try:
        lock.acquire()
    except DaemonUnavailable:
        raise DaemonUnavailable(
            f"a daemon is running on {db_path}: stop the daemon first: jobctl daemon stop"
        ) from None
    try:
        confirm(info)
        kept = _keep_aside(db_path, now, _phase(on_pages, "keeping")) if db_path.exists() else None
        copy_into_place(source, db_path, _phase(on_pages, "restoring"))
        store = open_store(db_path)
        try:
            with store.write():
                # The backup may have been taken while a daemon ran: none runs now.
                store.heartbeat_stop_if_running()
            runs.mark_orphans(store, now)
            jobs, run_count = store.row_counts()
            version = store.schema_version()
        finally:
            store.close()
    finally:
        lock.release()
    return RestoreResult(db_path, source, kept, jobs, run_count, info.schema_version, version)
