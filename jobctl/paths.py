"""Where jobctl's files live: the database and its sidecar files."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "jobctl"


def default_db_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)) / "jobctl.db"


def resolve_db_path(option: str | None) -> Path:
    """`--db`, else `JOBCTL_DB`, else the user data directory."""
    chosen = option or os.environ.get("JOBCTL_DB")
    if chosen:
        return Path(chosen).expanduser().absolute()
    return default_db_path()


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def pid_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".pid")


def default_log_path(db_path: Path) -> Path:
    """A detached daemon's log, beside its database: one log per database, like the lock."""
    return db_path.with_name(db_path.name + ".log")
