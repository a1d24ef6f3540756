"""What `jobctl list` shows of each job, gathered without the models.

Kept light on purpose (no jobctl.models, no store operations): on 1,000 jobs the table is
read from the jobs' own columns and their newest runs' statuses in one statement, where
building each Job and its stats took ~30 ms and importing what they need ~25 ms. The CLI
makes the same `ListedJob` from the models where the store has no such statement
(PostgreSQL), so both paths render through one function. Nothing here imports the models,
the history or the job rules (they import this).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from jobctl.secrets import redact_url

if TYPE_CHECKING:
    from jobctl.store.sqlite.listing import ListRow

STRIP_LENGTH = 10  # runs in the RECENT strip

# A run's status in the RECENT strip: (unicode, ASCII).
STRIP_SYMBOLS = {
    "succeeded": ("✓", "+"),
    "failed": ("✗", "x"),
    "timed_out": ("✗", "x"),
    "interrupted": ("!", "!"),
    "skipped": ("·", "."),
    "missed": ("○", "o"),
    "cancelled": ("⊘", "c"),
    "running": ("…", ">"),
    "queued": ("…", ">"),
    "waiting": ("…", ">"),
}
_UNKNOWN = ("?", "?")


class ListedJob(NamedTuple):
    """One line of `jobctl list`, before it is humanized."""

    name: str
    state: str
    paused_reason: str | None
    trigger: str
    schedule: str | None
    action: str  # the ACTION column: secrets in URLs redacted
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    success_rate: float | None
    recent: Sequence[str]  # the newest runs' statuses, oldest first


def strip_text(statuses: Iterable[str], unicode: bool = True) -> str:
    """The RECENT strip: a symbol per status (✓ ✗ ! · ○ ⊘ …, or + x ! . o c >)."""
    column = 0 if unicode else 1
    return "".join(STRIP_SYMBOLS.get(status, _UNKNOWN)[column] for status in statuses)


def success_rate(succeeded: int, total: int) -> float | None:
    """Lifetime share of succeeded runs among those counted, to 4 places (None: no runs)."""
    return round(succeeded / total, 4) if total else None


def action_text(
    kind: str,
    *,
    method: str = "",
    url: str = "",
    command: str = "",
    agent: str = "",
    prompt: str = "",
    team: str | None = None,
) -> str:
    """What a job does, in a line: `GET https://...` (password redacted), `agent NAME:
    PROMPT...`, `team NAME: PROMPT...`, `exec COMMAND`."""
    if kind == "http":
        return f"{method} {redact_url(url)}"
    if kind == "agent":
        prompt = " ".join(prompt.split())
        short = f"{prompt[:40]}{'…' if len(prompt) > 40 else ''}"
        return f"team {team}: {short}" if team else f"agent {agent}: {short}"
    return f"exec {command}"


def _text(value: object) -> str:
    """A stored spec's text field as the models read it (None: empty)."""
    return "" if value is None else str(value)


def stored_action_text(kind: str, spec: Mapping[str, object]) -> str:
    """action_text of a spec in its stored form, read as jobctl.models.specs reads it."""
    if kind == "http":
        method = _text(spec.get("method")) or ("GET" if spec.get("body") is None else "POST")
        return action_text(kind, method=method, url=_text(spec.get("url")))
    if kind == "agent":
        return action_text(
            kind,
            agent=_text(spec.get("agent")),
            prompt=_text(spec.get("prompt")),
            team=_text(spec.get("team")) or None,
        )
    return action_text(kind, command=_text(spec.get("command")))


def _stored_time(text: str | None) -> datetime | None:
    # The store's UTC text (to_db), read as from_db reads it; only differences are taken.
    return datetime.fromisoformat(text) if text else None


def listed_from_rows(rows: Iterable[ListRow]) -> list[ListedJob]:
    """ListedJobs from the SQLite store's list_rows."""
    return [
        ListedJob(
            name=row.name,
            state=row.state,
            paused_reason=row.paused_reason,
            trigger=row.trigger,
            schedule=row.schedule,
            action=stored_action_text(row.action, json.loads(row.spec)),
            next_run_at=_stored_time(row.next_run_at),
            last_run_at=_stored_time(row.last_run_at),
            last_status=row.last_status,
            success_rate=success_rate(row.runs_succeeded, row.runs_total),
            recent=row.recent,
        )
        for row in rows
    ]
