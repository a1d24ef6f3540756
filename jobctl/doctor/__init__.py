"""`jobctl doctor`: checks of the database, the daemon and the configuration, without changing
anything.

Each check returns one `Check` (ok, warn or fail, and a one-line message). The database is
opened read-only (store.open_store_read_only): doctor never creates it, migrates it, or takes
the daemon's lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path

from jobctl.doctor.base import FAIL, OK, WARN, Check, Context
from jobctl.doctor.database import (
    check_daemon,
    check_integrity,
    check_permissions,
    check_schema,
    check_timezone_database,
    check_wal,
    check_writable,
    open_database,
)
from jobctl.doctor.jobs import JOB_CHECKS
from jobctl.doctor.postgres import open_postgres_database
from jobctl.paths import DbLocation, PostgresUrl
from jobctl.store import StoreError
from jobctl.timeutil import utcnow

__all__ = ["Check", "failed", "run_checks", "summary"]


def run_checks(
    db_path: DbLocation,
    *,
    env_file: Path | None = None,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check, in the order they are shown.

    The env file is `env_file`, else JOBCTL_ENV_FILE, as for the daemon.
    """
    environ = dict(os.environ) if environ is None else environ
    if env_file is None and environ.get("JOBCTL_ENV_FILE"):
        env_file = Path(environ["JOBCTL_ENV_FILE"])
    if isinstance(db_path, PostgresUrl):
        return _postgres_checks(Context(db_path, env_file, now or utcnow(), environ), db_path)
    ctx = Context(db_path, env_file, now or utcnow(), environ)
    results = [open_database(ctx)]
    sound = False  # the database opened and passed its integrity check
    try:
        if ctx.store is not None:
            integrity = _guarded("integrity", check_integrity, ctx)
            results.append(integrity)
            sound = integrity.level == OK
            if sound:
                results.append(_guarded("schema", check_schema, ctx))
            results.append(check_wal(ctx))
            results.append(check_writable(ctx))
        permissions = check_permissions(ctx)
        if permissions is not None:
            results.append(permissions)
        if sound:
            results.append(_guarded("daemon", check_daemon, ctx))
        results.append(check_timezone_database(ctx))
        if sound:
            results.extend(_guarded(name, check, ctx) for name, check in JOB_CHECKS)
    finally:
        if ctx.store is not None:
            ctx.store.close()
    return results


def _postgres_checks(ctx: Context, location: PostgresUrl) -> list[Check]:
    """The checks that apply to a PostgreSQL database: it opens, the daemon, time zones, jobs."""
    results = [open_postgres_database(ctx, location)]
    try:
        if ctx.store is not None:
            results.append(_guarded("daemon", check_daemon, ctx))
        results.append(check_timezone_database(ctx))
        if ctx.store is not None:
            results.extend(_guarded(name, check, ctx) for name, check in JOB_CHECKS)
    finally:
        if ctx.store is not None:
            ctx.store.close()
    return results


def _guarded(name: str, check: Callable[[Context], Check], ctx: Context) -> Check:
    """A check that cannot read the database fails; it never stops the others."""
    try:
        return check(ctx)
    except StoreError as exc:
        return Check(name, FAIL, f"{name}: cannot read the database: {exc}")


def summary(results: Iterable[Check]) -> str:
    levels = [result.level for result in results]
    warnings, failures = levels.count(WARN), levels.count(FAIL)
    return (
        f"{len(levels)} checks: {levels.count(OK)} ok, "
        f"{warnings} warning{'s' if warnings != 1 else ''}, "
        f"{failures} failure{'s' if failures != 1 else ''}"
    )


def failed(results: Iterable[Check]) -> bool:
    return any(result.level == FAIL for result in results)
