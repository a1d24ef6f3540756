"""What every doctor check shares: the Check it returns, the Context it looks at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from jobctl.models import StoredJob
from jobctl.paths import DbLocation
from jobctl.store import SqliteStore

if TYPE_CHECKING:
    from jobctl.store.postgres import PostgresStore

OK, WARN, FAIL = "ok", "warn", "fail"
LEVELS = (OK, WARN, FAIL)
HEARTBEAT_STALE = timedelta(seconds=15)
CONNECT_TIMEOUT = 2.0  # seconds per agent endpoint; all are tried at once
HTTP_AGENT_KINDS = ("openai", "anthropic")
DEFAULT_PORTS = {"http": 80, "https": 443}
LISTED = 5  # names shown in one message before "and N more"


@dataclass(frozen=True)
class Check:
    check: str
    level: str  # ok | warn | fail
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Context:
    """What the checks look at; `store` is None when the database could not be read."""

    db_path: DbLocation
    env_file: Path | None
    now: datetime
    environ: Mapping[str, str]
    store: SqliteStore | PostgresStore | None = None
    jobs: list[StoredJob] = field(default_factory=list)
    bad_zones: set[str] = field(default_factory=set)

    @property
    def file(self) -> Path:
        """The SQLite file (only the checks of a file ask)."""
        assert isinstance(self.db_path, Path)
        return self.db_path

    @property
    def sqlite_store(self) -> SqliteStore:
        """The store, opened on an SQLite file (only the checks of a file ask)."""
        assert isinstance(self.store, SqliteStore)
        return self.store


def listed(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


def load_jobs(ctx: Context) -> list[StoredJob]:
    assert ctx.store is not None
    if not ctx.jobs:
        ctx.jobs = ctx.store.stored_jobs()
    return ctx.jobs
