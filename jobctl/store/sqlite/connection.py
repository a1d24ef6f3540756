"""Open an SQLite database (WAL, foreign keys, busy timeout, mode 0600) and migrate it.

A file that is not jobctl's (another program's database, a newer schema) is refused and
left byte for byte as it was.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from jobctl.errors import Failed, InvalidInput, NotFound
from jobctl.store.sqlite.migrations import SCHEMA_VERSION, check_owned, migrate, schema_version

BUSY_TIMEOUT_MS = 10_000
SQLITE_READONLY = 8


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 in a 0700 directory before SQLite touches it."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def unwritable_reason(path: Path) -> str | None:
    """Why this process cannot write the database (and its -wal, -shm), or None if it can.

    `access()` answers for this process: a read-only file system refuses even root.
    """
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    directory = path.parent
    while not directory.exists():  # the nearest directory that exists is where we create
        directory = directory.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is not writable"
    return None


def require_writable(path: Path) -> None:
    """Failed (exit 1, one line) when the database cannot be written here."""
    reason = unwritable_reason(path)
    if reason is not None:
        raise Failed(f"cannot write the database {path}: {reason}")


def require_jobctl_file(path: Path) -> None:
    """Failed (exit 1) when `path` holds something that is not a jobctl database this version
    can use, read without writing: for the daemon, before it creates its lock beside it."""
    if not path.is_file() or path.stat().st_size == 0:
        return  # missing or empty: created or set up on open
    try:
        conn = open_read_only(path)
    except sqlite3.DatabaseError as exc:
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    try:
        check_owned(conn)
    except sqlite3.DatabaseError as exc:
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    finally:
        conn.close()


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (creating if asked) and migrate the database at `path`, for reading and writing."""
    if path.is_dir():
        raise InvalidInput(f"database path {str(path)!r} is a directory")
    if not path.exists() and not create:
        raise NotFound(f"no database at {path}")
    require_writable(path)
    if not path.exists():
        try:
            _create_private_file(path)
        except OSError as exc:
            raise Failed(f"cannot create database {path}: {exc.strerror}") from None
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    try:
        configure(conn)
        migrate(conn)
        temp_in_memory(conn)
    except sqlite3.OperationalError as exc:
        conn.close()
        if _is_read_only_error(exc):
            raise Failed(f"cannot write the database {path}: {exc}") from None
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def connect_for_reading(path: Path) -> tuple[sqlite3.Connection, bool]:
    """Open an existing database for a command that only reads: (connection, writable).

    A database this process may write is opened (and migrated) as usual; one it may not
    (read-only file system, file or directory without write permission) is opened read-only,
    which works as long as its schema is current.
    """
    if path.is_dir():
        raise InvalidInput(f"database path {str(path)!r} is a directory")
    if not path.exists():
        raise NotFound(f"no database at {path}")
    if path.is_file() and path.stat().st_size == 0:
        # An empty file (`touch jobctl.db`) is an empty database to SQLite: it reads as one
        # with no jobs, as a database not created yet does, and reading leaves it as it is.
        return empty_database(), False
    if unwritable_reason(path) is None:
        return connect(path, create=False), True
    try:
        conn = open_read_only(path)
        check_owned(conn)
        version = schema_version(conn)
    except sqlite3.DatabaseError as exc:
        raise Failed(f"{path} is not a usable jobctl database: {exc}") from None
    if version < SCHEMA_VERSION:
        conn.close()
        raise Failed(
            f"{path} needs an upgrade to schema version {SCHEMA_VERSION}, and this process "
            f"cannot write it: {unwritable_reason(path)}"
        )
    conn.execute("PRAGMA foreign_keys = ON")
    return conn, False


def empty_database() -> sqlite3.Connection:
    """An empty jobctl database in memory: what a database not created yet reads as."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    configure(conn)
    migrate(conn)
    return conn


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing database for reading only: never creates, migrates or writes it.

    `mode=ro` leaves behind the -wal and -shm files it had to create, so when there is no
    -wal (no other connection is open) a read-write open with `query_only` is used instead:
    as the last connection it removes them again on close, and with an empty WAL it writes
    nothing to the database file. Where neither works (a directory we may not write in, so
    no -shm can be made) the file is read as immutable.
    """
    if not path.is_file():
        raise NotFound(f"no database at {path}")
    uri = path.absolute().as_uri()
    wal_exists = path.with_name(path.name + "-wal").exists()
    writable = unwritable_reason(path) is None
    modes = ["mode=rw", "mode=ro"] if writable and not wal_exists else ["mode=ro"]
    modes.append("mode=ro&immutable=1")
    error: sqlite3.OperationalError | None = None
    for mode in modes:
        conn = sqlite3.connect(
            f"{uri}?{mode}",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the file
        except sqlite3.OperationalError as exc:  # cannot open this way (read-only directory ...)
            conn.close()
            error = exc
            continue
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return conn
    assert error is not None
    raise error


def _is_read_only_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == SQLITE_READONLY


def configure(conn: sqlite3.Connection) -> None:
    """Connection settings, then WAL: only once the file is known to be jobctl's.

    A file that is refused (another program's SQLite database, a newer schema) is left
    byte for byte as it was: nothing here writes to it before `check_owned`.
    """
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    check_owned(conn)
    if conn.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def temp_in_memory(conn: sqlite3.Connection) -> None:
    """Sorts and statement journals in memory, not in temporary files opened, written and
    deleted on every write transaction of the daemon's (some 20 a second when busy). Set once
    migrated: a migration's CREATE INDEX sorts a whole table, which in memory would take as
    much RAM as the index (schema 6's indexes over 1.5 million runs: 120 MB, in files 25)."""
    conn.execute("PRAGMA temp_store = MEMORY")
