"""Where jobctl's data lives: the database (an SQLite file, or a PostgreSQL URL) and the
files beside a database file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

APP_NAME = "jobctl"


def default_db_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)) / "jobctl.db"


_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:/@]*):[^@]*@")


def is_postgres_url(text: str) -> bool:
    """Whether a `--db` value names a PostgreSQL database rather than an SQLite file."""
    return text.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """The URL with its password (if any) as `***`: `postgresql://user:***@host/db`."""
    return _PASSWORD.sub(r"\1:***@", url)


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL database named by `--db` or JOBCTL_DB. Its text (`str()`) hides the
    password: that is what messages, status and logs show; `url` is for connecting only."""

    url: str

    def __str__(self) -> str:
        return redact_url(self.url)


DbLocation = Path | PostgresUrl


def resolve_db_path(option: str | None) -> DbLocation:
    """`--db`, else `JOBCTL_DB`, else the user data directory."""
    chosen = option or os.environ.get("JOBCTL_DB")
    if chosen and is_postgres_url(chosen):
        return PostgresUrl(chosen)
    if chosen:
        return Path(chosen).expanduser().absolute()
    return default_db_path()


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def files_base(location: DbLocation) -> Path:
    """What a database's own files (pid file, log) are named after: an SQLite file itself;
    for PostgreSQL, a name in the user data directory made of its host and database."""
    if isinstance(location, Path):
        return location
    parts = urlsplit(location.url)
    database = parts.path.strip("/") or "postgres"
    return default_db_path().with_name(f"jobctl-pg-{parts.hostname or 'local'}-{database}")


def pid_path(db_path: DbLocation) -> Path:
    base = files_base(db_path)
    return base.with_name(base.name + ".pid")


def default_log_path(db_path: DbLocation) -> Path:
    """A detached daemon's log, beside its database: one log per database, like the lock."""
    base = files_base(db_path)
    return base.with_name(base.name + ".log")
