"""TAB completion of job names, agent names and run ids, read from the database.

Every TAB runs the CLI, so these stay cheap: sqlite3 only, the database opened read-only
(never created, never migrated), a short busy timeout, and any error means no suggestions
rather than a traceback in the middle of someone's command line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import click
    from click.shell_completion import CompletionItem

T = TypeVar("T")

# Enough for a screenful; a shell asks before it shows hundreds anyway.
LIMIT = 200
HELP_WIDTH = 60


def _database_uri(ctx: click.Context) -> str | None:
    """The `--db` given on the command line being completed, else JOBCTL_DB, else the default."""
    from jobctl.cli.shared import DB_KEY
    from jobctl.paths import resolve_db_path

    path = resolve_db_path(ctx.meta.get(DB_KEY))
    if not path.is_file():
        return None
    return path.as_uri() + "?mode=ro"


def _read(ctx: click.Context, reader: Callable[[sqlite3.Connection], list[T]]) -> list[T]:
    """What `reader` finds in the database, or [] when there is none or anything fails."""
    try:
        uri = _database_uri(ctx)
        if uri is None:
            return []
        conn = sqlite3.connect(uri, uri=True, timeout=0.2)
        try:
            return reader(conn)
        finally:
            conn.close()
    except Exception:  # completion must never break the shell: no suggestions instead
        return []


def _query(ctx: click.Context, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return _read(ctx, lambda conn: conn.execute(sql, params).fetchall())


def _already_given(ctx: click.Context, param: click.Parameter) -> set[str]:
    """Names typed earlier for the same NAME... argument (`jobctl rm a b <TAB>`)."""
    value = ctx.params.get(param.name or "")
    if isinstance(value, (tuple, list)):
        return {str(item) for item in value}
    return set()


def _one_line(text: str | None) -> str | None:
    words = " ".join((text or "").split())
    if len(words) > HELP_WIDTH:
        words = words[: HELP_WIDTH - 3] + "..."
    return words or None


def _prefix_range(incomplete: str) -> tuple[str, str]:
    """Bounds for `name >= ? AND name < ?`: a prefix search the UNIQUE index answers.

    Names are ASCII below DEL, so every name starting with the prefix sorts before prefix+DEL.
    """
    return incomplete, incomplete + "\x7f"


def _id_ranges(prefix: str, highest: int) -> list[tuple[int, int]]:
    """Integer ranges of the ids up to `highest` whose decimal text starts with `prefix`,
    largest first: prefix 4 with highest 4500 gives 4000-4500, 400-499, 40-49, 4-4."""
    if not prefix:
        return [(1, highest)] if highest >= 1 else []
    start = int(prefix)
    ranges = []
    scale = 1
    while start * scale <= highest:
        ranges.append((start * scale, min((start + 1) * scale - 1, highest)))
        scale *= 10
    return ranges[::-1]


def complete_job_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Job names starting with what was typed; the description as the help zsh and fish show."""
    from click.shell_completion import CompletionItem

    rows = _query(
        ctx,
        "SELECT name, description FROM jobs WHERE name >= ? AND name < ? ORDER BY name LIMIT ?",
        (*_prefix_range(incomplete), LIMIT),
    )
    given = _already_given(ctx, param)
    return [
        CompletionItem(name, help=_one_line(description))
        for name, description in rows
        if name not in given
    ]


def complete_agent_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Agent names starting with what was typed, with their kind as the help."""
    from click.shell_completion import CompletionItem

    rows = _query(
        ctx,
        "SELECT name, kind FROM agents WHERE name >= ? AND name < ? ORDER BY name LIMIT ?",
        (*_prefix_range(incomplete), LIMIT),
    )
    given = _already_given(ctx, param)
    return [CompletionItem(name, help=kind) for name, kind in rows if name not in given]


def complete_run_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The newest run ids starting with what was typed, with job, status and slot as help."""
    from click.shell_completion import CompletionItem

    if incomplete and not (incomplete.isascii() and incomplete.isdigit()):
        return []
    if incomplete.startswith("0"):
        return []

    def newest_runs(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
        highest = conn.execute("SELECT max(id) FROM runs").fetchone()[0]
        rows: list[tuple[Any, ...]] = []
        # One primary-key range per length of id, newest first: no scan of a long history.
        for low, high in _id_ranges(incomplete, int(highest or 0)):
            rows += conn.execute(
                "SELECT runs.id, jobs.name, runs.status, runs.scheduled_for FROM runs "
                "JOIN jobs ON jobs.id = runs.job_id WHERE runs.id BETWEEN ? AND ? "
                "ORDER BY runs.id DESC LIMIT ?",
                (low, high, LIMIT - len(rows)),
            ).fetchall()
            if len(rows) >= LIMIT:
                break
        return rows

    return [
        CompletionItem(str(run_id), help=f"{job} {status} {str(slot)[:16]}")
        for run_id, job, status, slot in _read(ctx, newest_runs)
    ]


def _words(values: Iterable[str], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(value) for value in values if value.startswith(incomplete)]


def complete_statuses(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Run statuses for `runs --status`."""
    from jobctl.runs import STATUSES

    return _words(STATUSES, incomplete)


def complete_triggers(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Run triggers for `runs --trigger`."""
    from jobctl.runs import TRIGGERS

    return _words(TRIGGERS, incomplete)


def zone_names() -> list[str]:
    """IANA zone names, read from the tzdata package's index (zoneinfo's own listing walks
    /usr/share/zoneinfo and takes over 100 ms, too slow for a TAB)."""
    import importlib.util
    import os

    try:
        spec = importlib.util.find_spec("tzdata")
        if spec is not None and spec.origin:
            with open(os.path.join(os.path.dirname(spec.origin), "zones"), encoding="utf-8") as f:
                return f.read().split()
    except OSError:
        pass
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


def complete_zones(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """IANA time zones for `--tz`: `Europe/Be` gives Europe/Belgrade and Europe/Berlin."""
    lowered = incomplete.lower()
    return _words(sorted(name for name in zone_names() if name.lower().startswith(lowered)), "")[
        :LIMIT
    ]
