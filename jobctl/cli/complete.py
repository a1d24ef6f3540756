"""TAB completion of job names, agent names and run ids, read from the database.

Every TAB runs the CLI, so these stay cheap: the database opened read-only (never created,
never migrated) with a short busy timeout, one index range per read, and any error means no
suggestions rather than a traceback in the middle of someone's command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import click
    from click.shell_completion import CompletionItem

    from jobctl.store import Store

T = TypeVar("T")

# Enough for a screenful; a shell asks before it shows hundreds anyway.
LIMIT = 200
HELP_WIDTH = 60


def _read(ctx: click.Context, reader: Callable[[Store], list[T]]) -> list[T]:
    """What `reader` finds in the database (the `--db` given on the command line being
    completed, else JOBCTL_DB, else the default), or [] when there is none or anything fails."""
    try:
        from jobctl.cli.shared import DB_KEY
        from jobctl.paths import resolve_db_path
        from jobctl.store import open_store_for_completion

        store = open_store_for_completion(resolve_db_path(ctx.meta.get(DB_KEY)))
        if store is None:
            return []
        try:
            return reader(store)
        finally:
            store.close()
    except Exception:  # completion must never break the shell: no suggestions instead
        return []


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


def complete_job_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Job names starting with what was typed; the description as the help zsh and fish show."""
    from click.shell_completion import CompletionItem

    rows = _read(ctx, lambda store: store.job_names_starting(incomplete, LIMIT))
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

    rows = _read(ctx, lambda store: store.agent_names_starting(incomplete, LIMIT))
    given = _already_given(ctx, param)
    return [CompletionItem(name, help=kind) for name, kind in rows if name not in given]


def complete_team_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Team names starting with what was typed, with their members as the help."""
    from click.shell_completion import CompletionItem

    teams = _read(ctx, lambda store: store.all_teams())
    given = _already_given(ctx, param)
    return [
        CompletionItem(team.name, help=" -> ".join(member.label for member in team.members))
        for team in teams
        if team.name.startswith(incomplete) and team.name not in given
    ][:LIMIT]


def complete_run_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The newest run ids starting with what was typed, with job, status and slot as help."""
    from click.shell_completion import CompletionItem

    if incomplete and not (incomplete.isascii() and incomplete.isdigit()):
        return []
    if incomplete.startswith("0"):
        return []
    return [
        CompletionItem(str(run_id), help=f"{job or '-'} {status} {slot:%Y-%m-%dT%H:%M}")
        for run_id, job, status, slot in _read(
            ctx, lambda store: store.newest_runs_with_id_prefix(incomplete, LIMIT)
        )
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


RESPONSE_HEADERS = (
    "Cache-Control",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "ETag",
    "Last-Modified",
    "Location",
    "Server",
    "Strict-Transport-Security",
    "X-Request-Id",
)


def complete_response_headers(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Common response header names for `--expect-header` (case as the user starts it)."""
    lowered = incomplete.lower()
    return _words((name for name in RESPONSE_HEADERS if name.lower().startswith(lowered)), "")
