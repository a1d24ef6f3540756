"""Backups and restores of the database with SQLite's online backup API.

The backup API copies a consistent snapshot while the daemon keeps writing; the result is one
self-contained file (its WAL checkpointed into it), checked with `integrity_check`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jobctl.errors import DaemonUnavailable, Failed, InvalidInput, NotFound
from jobctl.store.sqlite import open_read_only

SQLITE_MAGIC = b"SQLite format 3\x00"
BACKUP_PAGES = 1024  # pages copied per step (4 MiB at the default page size)
OPEN_TIMEOUT = 5.0
SIDECARS = ("-wal", "-shm", "-journal")
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26


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


def integrity_problems(conn: sqlite3.Connection, limit: int = 10) -> list[str]:
    """`PRAGMA integrity_check`: an empty list when the file is sound."""
    rows = [str(row[0]) for row in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    return [] if rows == ["ok"] else rows


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _counts(conn: sqlite3.Connection) -> tuple[int, int]:
    jobs = int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    runs = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    return jobs, runs


def inspect_database(path: Path) -> DatabaseInfo:
    """Check that `path` is a sound jobctl database this version can use (Failed if not)."""
    from jobctl.store.sqlite import SCHEMA_VERSION, schema_version

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
        conn = open_read_only(path)
    except sqlite3.Error as exc:
        raise Failed(f"{path} cannot be opened: {exc}") from None
    try:
        problems = integrity_problems(conn)
        if problems:
            raise Failed(f"{path} is damaged (integrity check: {problems[0]})")
        if not has_table(conn, "jobs") or not has_table(conn, "runs"):
            raise Failed(f"{path} is an SQLite database but not a jobctl one")
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise Failed(
                f"{path} has schema version {version}, newer than this jobctl knows "
                f"({SCHEMA_VERSION}): upgrade jobctl"
            )
        jobs, runs = _counts(conn)
    except sqlite3.Error as exc:
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    finally:
        conn.close()
    return DatabaseInfo(path, version, jobs, runs)


# --------------------------------------------------------------------------------- backup


def _create_private(path: Path) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def _copy_bytes_private(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with open(fd, "wb") as out, open(source, "rb") as handle:
        shutil.copyfileobj(handle, out)


def _remove_with_sidecars(path: Path) -> None:
    for suffix in ("", *SIDECARS):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()


def _copy(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """Copy `source` into `target` in steps, from one snapshot.

    The source holds one read transaction for the whole copy: in WAL mode that never blocks
    the daemon's writes, and the copy does not restart each time the daemon commits (which
    would never finish on a busy database). Copying in steps keeps each call short.
    """
    wal = str(source.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
    if wal:
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
    try:
        source.backup(target, pages=BACKUP_PAGES, sleep=0.005)
    finally:
        if wal:
            source.execute("COMMIT")


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


def backup_database(db_path: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Write a complete, verified copy of the database to `target` (mode 0600)."""
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
        _create_private(temporary)
    except OSError as exc:
        raise Failed(f"cannot write {target}: {exc.strerror}") from None
    try:
        jobs, runs = _backup_into(db_path, temporary)
        _install(temporary, target, force=force)
    except BaseException:
        _remove_with_sidecars(temporary)
        raise
    _fsync_directory(target.parent)
    return BackupResult(target, target.stat().st_size, jobs, runs)


def _backup_into(db_path: Path, temporary: Path) -> tuple[int, int]:
    try:
        source = open_read_only(db_path)  # also a database this process may not write
    except sqlite3.Error as exc:
        raise Failed(f"cannot open {db_path}: {exc}") from None
    target = sqlite3.connect(temporary, isolation_level=None)
    try:
        if not has_table(source, "jobs"):
            raise Failed(f"{db_path} is not a jobctl database")
        _copy(source, target)
        # Fold the copy's WAL into the file, so that the one file is the whole backup.
        target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        problems = integrity_problems(target)
        if problems:
            raise Failed(
                f"the copy failed its integrity check ({problems[0]}): the database "
                "itself may be damaged; see `jobctl doctor`"
            )
        return _counts(target)
    except sqlite3.Error as exc:
        raise Failed(f"backup of {db_path} failed: {exc} (see `jobctl doctor`)") from None
    finally:
        target.close()  # the last connection: removes the copy's -wal and -shm
        source.close()


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


def _keep_aside(db_path: Path, now: datetime) -> Path:
    """Copy the current database (with what its WAL holds) next to it, mode 0600."""
    kept = aside_path(db_path, now)
    _create_private(kept)
    try:
        with (
            contextlib.closing(
                sqlite3.connect(
                    f"{db_path.absolute().as_uri()}?mode=rw",
                    uri=True,
                    isolation_level=None,
                    timeout=OPEN_TIMEOUT,
                )
            ) as source,
            contextlib.closing(sqlite3.connect(kept, isolation_level=None)) as target,
        ):
            _copy(source, target)
            target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as exc:
        _remove_with_sidecars(kept)
        if not _is_damaged(exc):
            raise Failed(f"cannot keep a copy of {db_path}: {exc}") from None
        # Damaged (perhaps the reason for the restore): keep its bytes as they are.
        for suffix in ("", "-wal"):
            current = db_path.with_name(db_path.name + suffix)
            if current.exists():
                _copy_bytes_private(current, kept.with_name(kept.name + suffix))
    except BaseException:
        _remove_with_sidecars(kept)
        raise
    return kept


def _copy_into_place(source: Path, db_path: Path) -> None:
    """Replace the database's content through SQLite, so other connections stay consistent."""
    if not db_path.exists():
        _create_private(db_path)
    reader = open_read_only(source)
    try:
        try:
            writer = sqlite3.connect(db_path, isolation_level=None, timeout=OPEN_TIMEOUT)
            try:
                _match_page_size(reader, writer)
                reader.backup(writer, pages=BACKUP_PAGES)
            finally:
                writer.close()
        except sqlite3.DatabaseError as exc:
            if not _is_damaged(exc):
                raise
            # The current file is not a database SQLite can write into: start it afresh
            # (it was kept aside first).
            _remove_with_sidecars(db_path)
            _create_private(db_path)
            writer = sqlite3.connect(db_path, isolation_level=None, timeout=OPEN_TIMEOUT)
            try:
                reader.backup(writer, pages=BACKUP_PAGES)
            finally:
                writer.close()
    finally:
        reader.close()


def _is_damaged(exc: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB (the primary code, under any extended one)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def _match_page_size(reader: sqlite3.Connection, writer: sqlite3.Connection) -> None:
    """A backup into a WAL database needs equal page sizes; else leave WAL for the copy."""
    source_size = reader.execute("PRAGMA page_size").fetchone()[0]
    target_size = writer.execute("PRAGMA page_size").fetchone()[0]
    if source_size != target_size:
        writer.execute("PRAGMA journal_mode = DELETE")


Confirm = Callable[[DatabaseInfo], None]


def restore_database(db_path: Path, source: Path, now: datetime, confirm: Confirm) -> RestoreResult:
    """Replace the database with the backup `source`, keeping the current one aside.

    Refused (exit 4) while a daemon holds the database; this process holds the daemon's lock
    meanwhile, so none can start. `confirm` raises to stop before anything changed.
    """
    from jobctl import runs
    from jobctl.liveness import InstanceLock
    from jobctl.store.sqlite import connect, require_writable, schema_version, write_transaction

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
        kept = _keep_aside(db_path, now) if db_path.exists() else None
        _copy_into_place(source, db_path)
        conn = connect(db_path)
        try:
            with write_transaction(conn):
                # The backup may have been taken while a daemon ran: none runs now.
                conn.execute("UPDATE daemon SET stopped_at = last_tick_at WHERE stopped_at IS NULL")
            runs.mark_orphans(conn, now)
            jobs, run_count = _counts(conn)
            version = schema_version(conn)
        finally:
            conn.close()
    finally:
        lock.release()
    return RestoreResult(db_path, source, kept, jobs, run_count, info.schema_version, version)
