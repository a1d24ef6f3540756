"""Doctor's checks of the database file, its permissions, the daemon and the time zones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from jobctl.backup import SQLITE_MAGIC, is_wal_header
from jobctl.doctor.base import FAIL, HEARTBEAT_STALE, OK, WARN, Check, Context
from jobctl.errors import JobctlError
from jobctl.store import StoreError, open_store_read_only
from jobctl.timeutil import format_duration

# ------------------------------------------------------------------------------ database


def open_database(ctx: Context) -> Check:
    path = ctx.file
    if not path.exists():
        # Only the default database gets here (a named one that is missing is not found):
        # not created yet, it reads as empty.
        return Check(
            "database", WARN, f"no database yet at {path}: the first command that writes creates it"
        )
    if not path.is_file():
        return Check("database", FAIL, f"{path} is not a file")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        return Check("database", FAIL, f"cannot read {path}: {exc.strerror}")
    if header and not header.startswith(SQLITE_MAGIC):
        return Check("database", FAIL, f"{path} is not an SQLite database")
    try:
        store = open_store_read_only(path)
    except (StoreError, JobctlError) as exc:
        return Check("database", FAIL, f"cannot open {path}: {exc}")
    foreign = store.not_jobctls()
    if foreign is not None:
        store.close()
        return Check("database", FAIL, foreign)
    try:
        if not store.has_table("jobs"):
            tables = store.table_count()
            store.close()
            if tables:
                return Check("database", FAIL, f"{path} is an SQLite database but not a jobctl one")
            return Check("database", WARN, f"{path} is empty: it is set up on next open")
        jobs = store.job_count()
    except StoreError as exc:
        store.close()
        return Check("database", FAIL, f"cannot read {path}: {exc}")
    ctx.store = store
    return Check("database", OK, f"database opens ({path}, {jobs} job{'s' if jobs != 1 else ''})")


def check_integrity(ctx: Context) -> Check:
    try:
        problems = ctx.sqlite_store.integrity_problems()
    except StoreError as exc:  # too damaged for the check to finish
        return Check("integrity", FAIL, f"integrity check failed: {exc}")
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return Check("integrity", FAIL, f"integrity check failed: {problems[0]}{more}")
    return Check("integrity", OK, "integrity check passed")


def check_writable(ctx: Context) -> Check:
    """The daemon writes every run (and commands that change jobs write too): a database
    only readable here is a failure, even though reading commands still work."""
    from jobctl.store.sqlite import unwritable_reason

    reason = unwritable_reason(ctx.file)
    if reason is not None:
        return Check(
            "writable",
            FAIL,
            f"database is not writable ({reason}): the daemon cannot record runs "
            "and commands that change jobs are refused",
        )
    return Check("writable", OK, "database is writable")


def check_wal(ctx: Context) -> Check:
    try:
        with open(ctx.file, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        return Check("wal", FAIL, f"cannot read {ctx.file}: {exc.strerror}")
    if is_wal_header(header):
        return Check("wal", OK, "WAL mode on")
    return Check("wal", WARN, "WAL mode off: it is switched on at the next open")


def check_schema(ctx: Context) -> Check:
    from jobctl.store.sqlite import SCHEMA_VERSION

    version = ctx.sqlite_store.schema_version()
    if version == SCHEMA_VERSION:
        return Check("schema", OK, f"schema version {version} (current)")
    if version < SCHEMA_VERSION:
        return Check(
            "schema",
            WARN,
            f"schema version {version} of {SCHEMA_VERSION}: will be upgraded on next open",
        )
    return Check(
        "schema",
        FAIL,
        f"schema version {version} is newer than this jobctl knows "
        f"({SCHEMA_VERSION}): upgrade jobctl",
    )


def _open_to_others(path: Path, what: str) -> str | None:
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o066:
        fix = "700" if path.is_dir() else "600"
        return f"{what} {path} is {mode:04o} (chmod {fix})"
    return None


def check_permissions(ctx: Context) -> Check | None:
    """The database holds webhook secrets and the env file real ones: keep them private.

    None when none of the files exists.
    """
    places = [(ctx.file, "database"), (ctx.file.parent, "directory")]
    if ctx.env_file is not None:
        places.append((ctx.env_file, "env file"))
    present = [(path, what) for path, what in places if path.exists()]
    if not present:
        return None
    problems = [
        problem for path, what in present if (problem := _open_to_others(path, what)) is not None
    ]
    if problems:
        return Check(
            "permissions", WARN, f"readable or writable by group/others: {'; '.join(problems)}"
        )
    shown = ", ".join(f"{what} {path.stat().st_mode & 0o777:04o}" for path, what in present)
    return Check("permissions", OK, f"private files ({shown})")


# -------------------------------------------------------------------------------- daemon


def check_daemon(ctx: Context) -> Check:
    """From the heartbeat and the owner's pid: never touches the daemon's lock."""
    from jobctl import runs

    assert ctx.store is not None
    row = ctx.store.daemon_row()
    start = "start it with `jobctl daemon`"
    if row is None:
        return Check("daemon", WARN, f"daemon not running (never ran on this database): {start}")
    age = max(timedelta(0), ctx.now - row.last_tick_at)
    ago = f"{format_duration(round(age.total_seconds()))} ago"
    if row.stopped_at:
        return Check("daemon", WARN, f"daemon not running (stopped {ago}): {start}")
    pid, host = row.pid, row.host
    if host != runs.HOST:
        if age <= HEARTBEAT_STALE:
            return Check("daemon", OK, f"daemon running on {host} (pid {pid}, heartbeat {ago})")
        return Check("daemon", WARN, f"daemon on {host} (pid {pid}) last seen {ago}")
    if not runs.process_exists(pid, since=row.started_at):
        return Check(
            "daemon",
            WARN,
            f"daemon not running (pid {pid} ended without stopping "
            f"cleanly, last heartbeat {ago}): {start}",
        )
    if age > HEARTBEAT_STALE:
        return Check(
            "daemon", FAIL, f"daemon stuck? pid {pid} is alive but its last heartbeat was {ago}"
        )
    return Check("daemon", OK, f"daemon running (pid {pid}, heartbeat {ago})")


# --------------------------------------------------------------------------- time and jobs


def check_timezone_database(ctx: Context) -> Check:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo("America/New_York")
    except (ZoneInfoNotFoundError, OSError, ValueError):
        return Check(
            "timezones",
            FAIL,
            "time zone database missing: install tzdata (pip install tzdata, or the OS package)",
        )
    return Check("timezones", OK, "time zone database present")
