"""The database as an SQLite file: integrity, schema version, online backup and restore copies.

What `jobctl backup`, `restore` and `doctor` need that only SQLite has. The backup API copies
a consistent snapshot while the daemon keeps writing; the result is one self-contained file
(its WAL checkpointed into it).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from jobctl.errors import Failed
from jobctl.store.sqlite.base import Connected
from jobctl.store.sqlite.connection import open_read_only
from jobctl.store.sqlite.migrations import schema_version

BACKUP_PAGES = 1024  # pages copied per step (4 MiB at the default page size)
OPEN_TIMEOUT = 5.0
SIDECARS = ("-wal", "-shm", "-journal")
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26

# Told after each step of a copy: (pages copied, pages in all), for a progress bar.
OnPages = Callable[[int, int], None]


def _steps(on_pages: OnPages | None) -> Callable[[int, int, int], object] | None:
    """The backup API's progress callback for `on_pages`."""
    if on_pages is None:
        return None
    return lambda _status, remaining, total: on_pages(total - remaining, total)


def _integrity_problems(conn: sqlite3.Connection, limit: int = 10) -> list[str]:
    rows = [str(row[0]) for row in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    return [] if rows == ["ok"] else rows


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _counts(conn: sqlite3.Connection) -> tuple[int, int]:
    jobs = int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    runs = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    return jobs, runs


class FileOps(Connected):
    """Questions about the file itself; they work on any schema version, even a foreign file."""

    def integrity_problems(self, limit: int = 10) -> list[str]:
        """`PRAGMA integrity_check`: an empty list when the file is sound."""
        return _integrity_problems(self.conn, limit)

    def has_table(self, name: str) -> bool:
        return _has_table(self.conn, name)

    def table_count(self) -> int:
        """How many tables the file has (jobctl's or not)."""
        row = self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        return int(row.fetchone()[0])

    def schema_version(self) -> int:
        return schema_version(self.conn)

    def not_jobctls(self) -> str | None:
        """Why this file is not a jobctl database (a `jobs` table alone does not make it
        one), or None; too damaged to tell is None too: the integrity check says how."""
        from jobctl.errors import Failed
        from jobctl.store.sqlite.migrations import check_owned

        try:
            check_owned(self.conn, known=max(schema_version(self.conn), 1))
        except Failed as exc:
            return str(exc)
        except sqlite3.Error:
            return None
        return None

    def job_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM jobs").fetchone()[0])

    def row_counts(self) -> tuple[int, int]:
        """(jobs, runs)."""
        return _counts(self.conn)


# ------------------------------------------------------------------------------- files


def create_private(path: Path) -> None:
    """Create `path` empty, mode 0600; FileExistsError if it exists."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def copy_bytes_private(source: Path, target: Path) -> None:
    import shutil  # here: every command opens the store, few copy a file

    fd = os.open(target, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with open(fd, "wb") as out, open(source, "rb") as handle:
        shutil.copyfileobj(handle, out)


def remove_with_sidecars(path: Path) -> None:
    """The file and its -wal, -shm and -journal."""
    for suffix in ("", *SIDECARS):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()


def is_damaged(exc: BaseException) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB (the primary code, under any extended one)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


# ------------------------------------------------------------------------------ copies


def _copy(
    source: sqlite3.Connection, target: sqlite3.Connection, on_pages: OnPages | None = None
) -> None:
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
        source.backup(target, pages=BACKUP_PAGES, sleep=0.005, progress=_steps(on_pages))
    finally:
        if wal:
            source.execute("COMMIT")


def backup_into(db_path: Path, temporary: Path, on_pages: OnPages | None = None) -> tuple[int, int]:
    """Copy the database into the (empty) file `temporary` and verify the copy: its
    (jobs, runs), or Failed."""
    try:
        source = open_read_only(db_path)  # also a database this process may not write
    except sqlite3.Error as exc:
        raise Failed(f"cannot open {db_path}: {exc}") from None
    target = sqlite3.connect(temporary, isolation_level=None)
    try:
        if not _has_table(source, "jobs"):
            raise Failed(f"{db_path} is not a jobctl database")
        _copy(source, target, on_pages)
        # Fold the copy's WAL into the file, so that the one file is the whole backup.
        target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        problems = _integrity_problems(target)
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


def keep_copy(db_path: Path, kept: Path, on_pages: OnPages | None = None) -> None:
    """Copy the current database (with what its WAL holds) to the new file `kept` (0600).

    A damaged database (perhaps the reason for a restore) is kept byte for byte instead.
    """
    create_private(kept)
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
            _copy(source, target, on_pages)
            target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as exc:
        remove_with_sidecars(kept)
        if not is_damaged(exc):
            raise Failed(f"cannot keep a copy of {db_path}: {exc}") from None
        for suffix in ("", "-wal"):
            current = db_path.with_name(db_path.name + suffix)
            if current.exists():
                copy_bytes_private(current, kept.with_name(kept.name + suffix))
    except BaseException:
        remove_with_sidecars(kept)
        raise


def copy_into_place(source: Path, db_path: Path, on_pages: OnPages | None = None) -> None:
    """Replace the database's content through SQLite, so other connections stay consistent."""
    if not db_path.exists():
        create_private(db_path)
    reader = open_read_only(source)
    try:
        try:
            writer = sqlite3.connect(db_path, isolation_level=None, timeout=OPEN_TIMEOUT)
            try:
                _match_page_size(reader, writer)
                reader.backup(writer, pages=BACKUP_PAGES, progress=_steps(on_pages))
            finally:
                writer.close()
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
            # The current file is not a database SQLite can write into: start it afresh
            # (it was kept aside first).
            remove_with_sidecars(db_path)
            create_private(db_path)
            writer = sqlite3.connect(db_path, isolation_level=None, timeout=OPEN_TIMEOUT)
            try:
                reader.backup(writer, pages=BACKUP_PAGES, progress=_steps(on_pages))
            finally:
                writer.close()
    finally:
        reader.close()


def _match_page_size(reader: sqlite3.Connection, writer: sqlite3.Connection) -> None:
    """A backup into a WAL database needs equal page sizes; else leave WAL for the copy."""
    source_size = reader.execute("PRAGMA page_size").fetchone()[0]
    target_size = writer.execute("PRAGMA page_size").fetchone()[0]
    if source_size != target_size:
        writer.execute("PRAGMA journal_mode = DELETE")
