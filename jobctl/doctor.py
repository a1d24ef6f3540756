"""`jobctl doctor`: checks of the database, the daemon and the configuration, without changing
anything.

Each check returns one `Check` (ok, warn or fail, and a one-line message). The database is
opened read-only (see db.open_read_only): doctor never creates it, migrates it, or takes
the daemon's lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobctl.backup import SQLITE_MAGIC, has_table, integrity_problems, is_wal_header
from jobctl.errors import Failed, JobctlError
from jobctl.store.sqlite import open_read_only, unwritable_reason
from jobctl.timeutil import format_duration, from_db, utcnow

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
    """What the checks look at; `conn` is None when the database could not be read."""

    db_path: Path
    env_file: Path | None
    now: datetime
    environ: Mapping[str, str]
    conn: sqlite3.Connection | None = None
    jobs: list[sqlite3.Row] = field(default_factory=list)
    bad_zones: set[str] = field(default_factory=set)


def run_checks(
    db_path: Path,
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
    ctx = Context(db_path, env_file, now or utcnow(), environ)
    results = [_open(ctx)]
    sound = False  # the database opened and passed its integrity check
    try:
        if ctx.conn is not None:
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
        if ctx.conn is not None:
            ctx.conn.close()
    return results


def _guarded(name: str, check: Callable[[Context], Check], ctx: Context) -> Check:
    """A check that cannot read the database fails; it never stops the others."""
    try:
        return check(ctx)
    except sqlite3.Error as exc:
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


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


# ------------------------------------------------------------------------------ database


def _open(ctx: Context) -> Check:
    path = ctx.db_path
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
        conn = open_read_only(path)
    except (sqlite3.Error, JobctlError) as exc:
        return Check("database", FAIL, f"cannot open {path}: {exc}")
    try:
        from jobctl.store.sqlite import check_owned, schema_version

        # A `jobs` table alone does not make it jobctl's (the schema check judges versions).
        check_owned(conn, known=max(schema_version(conn), 1))
    except Failed as exc:
        conn.close()
        return Check("database", FAIL, str(exc))
    except sqlite3.Error:
        pass  # too damaged to tell: the checks below say how
    try:
        if not has_table(conn, "jobs"):
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            conn.close()
            if tables:
                return Check("database", FAIL, f"{path} is an SQLite database but not a jobctl one")
            return Check("database", WARN, f"{path} is empty: it is set up on next open")
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    except sqlite3.Error as exc:
        conn.close()
        return Check("database", FAIL, f"cannot read {path}: {exc}")
    ctx.conn = conn
    return Check("database", OK, f"database opens ({path}, {jobs} job{'s' if jobs != 1 else ''})")


def check_integrity(ctx: Context) -> Check:
    assert ctx.conn is not None
    try:
        problems = integrity_problems(ctx.conn)
    except sqlite3.DatabaseError as exc:  # too damaged for the check to finish
        return Check("integrity", FAIL, f"integrity check failed: {exc}")
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return Check("integrity", FAIL, f"integrity check failed: {problems[0]}{more}")
    return Check("integrity", OK, "integrity check passed")


def check_writable(ctx: Context) -> Check:
    """The daemon writes every run (and commands that change jobs write too): a database
    only readable here is a failure, even though reading commands still work."""
    reason = unwritable_reason(ctx.db_path)
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
        with open(ctx.db_path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        return Check("wal", FAIL, f"cannot read {ctx.db_path}: {exc.strerror}")
    if is_wal_header(header):
        return Check("wal", OK, "WAL mode on")
    return Check("wal", WARN, "WAL mode off: it is switched on at the next open")


def check_schema(ctx: Context) -> Check:
    from jobctl.store.sqlite import SCHEMA_VERSION, schema_version

    assert ctx.conn is not None
    version = schema_version(ctx.conn)
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
    places = [(ctx.db_path, "database"), (ctx.db_path.parent, "directory")]
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

    assert ctx.conn is not None
    row = ctx.conn.execute(
        "SELECT pid, host, started_at, last_tick_at, stopped_at FROM daemon WHERE id = 1"
    ).fetchone()
    start = "start it with `jobctl daemon`"
    if row is None:
        return Check("daemon", WARN, f"daemon not running (never ran on this database): {start}")
    last_tick = from_db(row["last_tick_at"])
    age = max(timedelta(0), ctx.now - last_tick)
    ago = f"{format_duration(round(age.total_seconds()))} ago"
    if row["stopped_at"]:
        return Check("daemon", WARN, f"daemon not running (stopped {ago}): {start}")
    pid, host = row["pid"], row["host"]
    if host != runs.HOST:
        if age <= HEARTBEAT_STALE:
            return Check("daemon", OK, f"daemon running on {host} (pid {pid}, heartbeat {ago})")
        return Check("daemon", WARN, f"daemon on {host} (pid {pid}) last seen {ago}")
    if not runs.process_exists(pid, since=from_db(row["started_at"])):
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


def _load_jobs(ctx: Context) -> list[sqlite3.Row]:
    assert ctx.conn is not None
    if not ctx.jobs:
        ctx.jobs = ctx.conn.execute(
            "SELECT name, action, spec, policies, trigger, schedule, timezone, state FROM jobs "
            "ORDER BY name"
        ).fetchall()
    return ctx.jobs


def check_job_zones(ctx: Context) -> Check:
    from jobctl.timeutil import get_zone

    jobs = _load_jobs(ctx)
    bad: list[str] = []
    for job in jobs:
        try:
            get_zone(job["timezone"])
        except JobctlError:
            bad.append(f"{job['name']} ({job['timezone']})")
            ctx.bad_zones.add(job["name"])
    if bad:
        return Check(
            "job zones",
            FAIL,
            f"unknown time zone in {len(bad)} job{'s' if len(bad) != 1 else ''}: {_listed(bad)}",
        )
    zones = len({job["timezone"] for job in jobs})
    return Check("job zones", OK, f"job time zones valid ({zones} zone{'s' if zones != 1 else ''})")


def check_schedules(ctx: Context) -> Check:
    from jobctl.schedule import build_schedule

    bad: list[str] = []
    checked = 0
    for job in _load_jobs(ctx):
        if job["name"] in ctx.bad_zones:
            continue  # already reported, and no schedule can be built without a zone
        checked += 1
        try:
            build_schedule(job["trigger"], job["schedule"], job["timezone"])
        except (JobctlError, ValueError) as exc:
            bad.append(f"{job['name']} ({exc})")
    if bad:
        return Check("schedules", FAIL, f"schedules that no longer parse: {_listed(bad)}")
    return Check("schedules", OK, f"schedules parse ({checked} job{'s' if checked != 1 else ''})")


# ------------------------------------------------------------------------------- agents


def _endpoint(kind: str, config: Mapping[str, Any]) -> tuple[str, int]:
    url = str(config.get("url") or ("https://api.anthropic.com" if kind == "anthropic" else ""))
    if not url:
        raise ValueError("no URL configured")
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    if port is None:
        raise ValueError(f"no port for {url!r}")
    return parts.hostname, port


def _reach(address: tuple[str, int]) -> str | None:
    """None when a TCP connection opens within the timeout, else why not."""
    try:
        with socket.create_connection(address, timeout=CONNECT_TIMEOUT):
            return None
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _command_problem(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"invalid command: {exc}"
    if not words:
        return "empty command"
    program = words[0]
    if "/" in program:
        path = Path(program).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            return f"{program} is not an executable file"
        return None
    if shutil.which(program) is None:
        return f"{program} is not on PATH"
    return None


def check_agents(ctx: Context) -> Check:
    assert ctx.conn is not None
    rows = ctx.conn.execute("SELECT name, kind, config FROM agents ORDER BY name").fetchall()
    if not rows:
        return Check("agents", OK, "no agents to check")
    from jobctl.secrets import expand, has_reference

    problems: list[str] = []
    endpoints: dict[str, tuple[str, int]] = {}
    hidden: dict[str, bool] = {}  # agents whose host comes from a secret
    unchecked: list[str] = []  # agents whose URL names an undefined secret
    for row in rows:
        try:
            config = json.loads(row["config"] or "{}")
        except ValueError:
            problems.append(f"{row['name']} (unreadable configuration)")
            continue
        if row["kind"] in HTTP_AGENT_KINDS:
            if has_reference(config.get("url")):
                # reached as the daemon would (expanded), never shown expanded; an undefined
                # name is the secrets check's to report
                try:
                    url, _ = expand(str(config["url"]), _fire_env(ctx))
                    hidden[row["name"]] = True
                except Failed:
                    unchecked.append(row["name"])
                    continue
                config = {**config, "url": url}
            try:
                endpoints[row["name"]] = _endpoint(row["kind"], config)
            except ValueError as exc:
                problems.append(
                    f"{row['name']} ({'its URL is not usable' if hidden.get(row['name']) else exc})"
                )
        elif row["kind"] == "command":
            problem = _command_problem(str(config.get("command") or ""))
            if problem:
                problems.append(f"{row['name']} ({problem})")
    if endpoints:
        with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
            answers = dict(zip(endpoints, pool.map(_reach, endpoints.values()), strict=True))
        for name, answer in answers.items():
            if answer is not None:
                host, port = endpoints[name]
                where = "its URL" if hidden.get(name) else f"{host}:{port}"
                problems.append(f"{name} ({where}: {answer})")
    if problems:
        return Check("agents", FAIL, f"agents not usable: {_listed(sorted(problems))}")
    if unchecked:
        return Check(
            "agents",
            WARN,
            f"not checked (their URL uses an undefined ${{NAME}}, see secrets): "
            f"{_listed(unchecked)}",
        )
    return Check("agents", OK, f"agents reachable ({len(rows)})")


# ------------------------------------------------------------------------------ secrets


def _texts(config: Mapping[str, Any]) -> list[str]:
    """Every field of a job's spec or an agent's config that may hold `${NAME}` references
    (the action's, --deliver, and an agent's url, system prompt, headers and command)."""
    keys = ("url", "body", "prompt", "command", "deliver", "system")
    texts = [config.get(key) for key in keys]
    for key in ("headers", "env"):
        values = config.get(key)
        if isinstance(values, Mapping):
            texts.extend(values.values())
    return [str(text) for text in texts if text]


def _notify_urls(policies_text: str | None) -> list[str]:
    """The --notify-on URLs of a job's stored policies (expanded when a notification goes)."""
    items = _json_object(policies_text).get("notify")
    if not isinstance(items, list):
        return []
    return [str(item["url"]) for item in items if isinstance(item, Mapping) and item.get("url")]


def _json_object(text: str | None) -> Mapping[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, Mapping) else {}


def _secret_users(ctx: Context) -> dict[str, list[str]]:
    """Each `${NAME}` (and each agent's --api-key-env) -> who needs it: job names, `agent X`."""
    from jobctl.secrets import references

    assert ctx.conn is not None
    users: dict[str, list[str]] = {}

    def need(name: str, user: str) -> None:
        if user not in users.setdefault(name, []):
            users[name].append(user)

    for job in _load_jobs(ctx):
        spec = _json_object(job["spec"])
        for text in [*_texts(spec), *_notify_urls(job["policies"])]:
            for name in references(text):
                need(name, job["name"])
    for row in ctx.conn.execute("SELECT name, config FROM agents ORDER BY name"):
        config = _json_object(row["config"])
        user = f"agent {row['name']}"
        for text in _texts(config):
            for name in references(text):
                need(name, user)
        if config.get("api_key_env"):
            need(str(config["api_key_env"]), user)
    return users


def _fire_env(ctx: Context) -> dict[str, str]:
    """What `${NAME}` expands from, as for the daemon (an unreadable env file adds nothing)."""
    env = dict(ctx.environ)
    if ctx.env_file is not None:
        from jobctl.daemon import read_env_file

        with contextlib.suppress(JobctlError):
            env.update(read_env_file(ctx.env_file))
    return env


def check_secrets(ctx: Context) -> Check:
    source = "the environment"
    if ctx.env_file is not None:
        from jobctl.daemon import read_env_file

        try:
            read_env_file(ctx.env_file)
        except JobctlError as exc:
            return Check("secrets", FAIL, str(exc))
        source += f" or {ctx.env_file}"
    defined = set(_fire_env(ctx))
    used = _secret_users(ctx)
    missing = {name: users for name, users in used.items() if name not in defined}
    if missing:
        listed = [
            f"${{{name}}} (used by {', '.join(users)})" for name, users in sorted(missing.items())
        ]
        return Check("secrets", WARN, f"references not defined in {source}: {_listed(listed)}")
    if not used:
        return Check("secrets", OK, "no ${NAME} references")
    return Check(
        "secrets",
        OK,
        f"every ${{NAME}} reference is defined ({len(used)} name{'s' if len(used) != 1 else ''})",
    )


# --------------------------------------------------------------------------------- runs


def check_orphaned_runs(ctx: Context) -> Check:
    """`running` rows whose process is gone: the next jobctl process marks them interrupted."""
    from jobctl import runs

    assert ctx.conn is not None
    rows = ctx.conn.execute(
        "SELECT runs.id, jobs.name, runs.owner_pid, runs.owner_host, runs.started_at "
        "FROM runs JOIN jobs ON jobs.id = runs.job_id WHERE runs.status = 'running' "
        "ORDER BY runs.id"
    ).fetchall()
    orphans = [
        row
        for row in rows
        if row["owner_host"] == runs.HOST
        and not runs.process_exists(
            row["owner_pid"] or 0, since=from_db(row["started_at"]) if row["started_at"] else None
        )
    ]
    if orphans:
        count = len(orphans)
        listed = _listed([f"{row['id']} ({row['name']})" for row in orphans])
        return Check(
            "runs",
            WARN,
            f"{count} run{'s' if count != 1 else ''} will be marked "
            f"interrupted: {'their' if count != 1 else 'its'} process is "
            f"gone (run {listed})",
        )
    return Check("runs", OK, f"no orphaned runs ({len(rows)} running)")


JOB_CHECKS: list[tuple[str, Callable[[Context], Check]]] = [
    ("job zones", check_job_zones),
    ("schedules", check_schedules),
    ("agents", check_agents),
    ("secrets", check_secrets),
    ("runs", check_orphaned_runs),
]
