"""Doctor's checks of a PostgreSQL database: it opens (without migrating) and its schema.

What doctor checks of an SQLite file (integrity, WAL, permissions, writable) is the
server's business on PostgreSQL; the daemon, time zone and job checks are the same.
"""

from __future__ import annotations

from jobctl.doctor.base import FAIL, OK, WARN, Check, Context
from jobctl.errors import JobctlError
from jobctl.paths import PostgresUrl
from jobctl.store import StoreError


def open_postgres_database(ctx: Context, location: PostgresUrl) -> Check:
    """Connect, read the schema version; the store goes in `ctx.store` when it is current."""
    try:
        from jobctl.store.postgres import SCHEMA_VERSION, open_postgres_read_only
    except ImportError:
        return Check(
            "database", FAIL, "PostgreSQL needs the psycopg driver: pip install 'jobctl[postgres]'"
        )
    try:
        store = open_postgres_read_only(location.url)
    except (StoreError, JobctlError) as exc:
        return Check("database", FAIL, f"cannot open {location}: {exc}")
    version = store.schema_version()
    if version > SCHEMA_VERSION:
        store.close()
        return Check(
            "database",
            FAIL,
            f"schema version {version} is newer than this jobctl knows ({SCHEMA_VERSION}): "
            "upgrade jobctl",
        )
    if version < SCHEMA_VERSION:
        store.close()
        return Check(
            "database",
            WARN,
            f"{location} has schema version {version} of {SCHEMA_VERSION}: the first command "
            "that writes sets it up",
        )
    jobs = store.count_jobs()
    ctx.store = store
    return Check(
        "database",
        OK,
        f"database opens ({location}, schema version {version}, "
        f"{jobs} job{'s' if jobs != 1 else ''})",
    )
