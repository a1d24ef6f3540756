"""What every doctor check shares: the Check it returns, the Context it looks at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from jobctl.models import StoredJob
from jobctl.store import SqliteStore

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

    db_path: Path
    env_file: Path | None
    now: datetime
    environ: Mapping[str, str]
    store: SqliteStore | None = None
    jobs: list[StoredJob] = field(default_factory=list)
    bad_zones: set[str] = field(default_factory=set)


def listed(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


def load_jobs(ctx: Context) -> list[StoredJob]:
    assert ctx.store is not None
    if not ctx.jobs:
        ctx.jobs = ctx.store.stored_jobs()
    return ctx.jobs
