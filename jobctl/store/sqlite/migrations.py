"""The schema, as numbered migrations applied in order when a database is opened.

Ordered and append-only: never edit a migration that has shipped; add a new one. Each runs
in its own write transaction and bumps `PRAGMA user_version`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from jobctl.errors import Failed
from jobctl.store.sqlite.transaction import write_transaction

Migration = Callable[[sqlite3.Connection], None]


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statements inside the caller's transaction.

    `executescript` would COMMIT first, breaking the migration's atomicity.
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            conn.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending!r}")


def _m001_initial(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT 'enabled'
                CHECK (state IN ('enabled', 'paused', 'completed')),
            paused_reason TEXT,
            action TEXT NOT NULL CHECK (action IN ('http', 'agent', 'exec')),
            spec TEXT NOT NULL,
            trigger TEXT NOT NULL CHECK (trigger IN ('cron', 'every', 'once', 'manual')),
            schedule TEXT,
            timezone TEXT NOT NULL,
            policies TEXT NOT NULL DEFAULT '{}',
            next_run_at TEXT,
            last_slot_at TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            runs_total INTEGER NOT NULL DEFAULT 0,
            runs_succeeded INTEGER NOT NULL DEFAULT 0,
            runs_failed INTEGER NOT NULL DEFAULT 0,
            runs_skipped INTEGER NOT NULL DEFAULT 0,
            runs_missed INTEGER NOT NULL DEFAULT 0,
            last_run_at TEXT,
            last_status TEXT,
            last_success_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX jobs_next_run_at ON jobs (next_run_at) WHERE next_run_at IS NOT NULL;

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            trigger TEXT NOT NULL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 1,
            scheduled_for TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            duration_ms INTEGER,
            http_status INTEGER,
            exit_code INTEGER,
            error TEXT,
            output TEXT,
            snapshot TEXT,
            details TEXT,
            owner_pid INTEGER,
            owner_host TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX runs_job_id ON runs (job_id, id);
        CREATE INDEX runs_active ON runs (status) WHERE status IN ('queued', 'running');

        CREATE TABLE agents (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('openai', 'anthropic', 'command')),
            config TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE TABLE daemon (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started_at TEXT NOT NULL,
            last_tick_at TEXT NOT NULL,
            listen TEXT,
            stopped_at TEXT
        );
        """,
    )


def _m002_run_claims(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN due_at TEXT;
        CREATE UNIQUE INDEX runs_one_per_slot ON runs (job_id, trigger, scheduled_for, attempt)
            WHERE trigger IN ('schedule', 'catchup', 'retry') AND status != 'missed';
        CREATE INDEX runs_queued_due ON runs (due_at) WHERE status = 'queued';
        CREATE INDEX runs_finished_at ON runs (finished_at);
        """,
    )


def _m003_daemon_log_file(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE daemon ADD COLUMN log_file TEXT")


def _m004_hooks_and_chains(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        ALTER TABLE jobs ADD COLUMN hook_secret TEXT;
        ALTER TABLE jobs ADD COLUMN alerted_at TEXT;
        ALTER TABLE runs ADD COLUMN caused_by INTEGER;
        CREATE TABLE chains (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            upstream_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            on_status TEXT NOT NULL CHECK (on_status IN ('succeeded', 'failed', 'finished')),
            PRIMARY KEY (job_id, upstream_id, on_status)
        );
        CREATE INDEX chains_upstream ON chains (upstream_id);
        """,
    )


def _m005_running_index(conn: sqlite3.Connection) -> None:
    # Overlap checks and orphan scans ask "which runs are running?" on every tick; without
    # this index that read the whole history.
    conn.execute("CREATE INDEX runs_running ON runs (job_id) WHERE status = 'running'")


def _m006_history_indexes(conn: sqlite3.Connection) -> None:
    # Measured on 5M runs (bench/history.py): `list` read a table row per recent run for its
    # stats (180 ms), `runs --status interrupted` walked the whole table (1.6 s) and
    # `status` scanned a day of runs to count failures (180 ms). A covering (job_id, id,
    # status, duration_ms) replaces the plain (job_id, id); (status, id) serves the rest.
    execute_script(
        conn,
        """
        DROP INDEX runs_job_id;
        CREATE INDEX runs_job_recent ON runs (job_id, id, status, duration_ms);
        CREATE INDEX runs_status_id ON runs (status, id);
        """,
    )


def _m007_exec_shell_explicit(conn: sqlite3.Connection) -> None:
    # Exec jobs now run through /bin/sh -c by default; one stored without a `shell` key ran
    # its words directly, and keeps doing so.
    import json

    rows = conn.execute("SELECT id, spec FROM jobs WHERE action = 'exec'").fetchall()
    for job_id, text in rows:
        spec = json.loads(text)
        if "shell" not in spec:
            spec["shell"] = False
            conn.execute(
                "UPDATE jobs SET spec = ? WHERE id = ?", (json.dumps(spec, sort_keys=True), job_id)
            )


def _m008_webhook_deliveries(conn: sqlite3.Connection) -> None:
    # Replay protection: each X-GitHub-Delivery id and Idempotency-Key a job's webhook saw
    # in the last 24 hours, with the run it started. The primary key makes a repeat lose
    # even when two copies arrive at once; run_id is no foreign key, since history is pruned.
    execute_script(
        conn,
        """
        CREATE TABLE hook_deliveries (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            run_id INTEGER NOT NULL,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (job_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX hook_deliveries_seen_at ON hook_deliveries (seen_at);
        """,
    )


def _m009_run_process_group(conn: sqlite3.Connection) -> None:
    # An exec run's process group and its leader's start (clock ticks since boot), so that
    # whoever takes over a dead owner's run can end the command's processes, and only them.
    execute_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN pgid INTEGER;
        ALTER TABLE runs ADD COLUMN pgid_started INTEGER;
        """,
    )


def _m010_live_runs(conn: sqlite3.Connection) -> None:
    # Runs without a job (ad hoc: `jobctl run --exec ...`, their action kept in `adhoc`),
    # a cancel request, the run a rerun repeats; a run's output in pieces while in flight;
    # the event stream. SQLite cannot drop NOT NULL in place: the runs table is rebuilt (no
    # foreign key points at it), its indexes re-created as they were.
    indexes = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' "
            "AND sql IS NOT NULL"
        )
    ]
    execute_script(
        conn,
        """
        CREATE TABLE runs_rebuilt (
            id INTEGER PRIMARY KEY,
            job_id INTEGER REFERENCES jobs (id) ON DELETE CASCADE,
            trigger TEXT NOT NULL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 1,
            scheduled_for TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            duration_ms INTEGER,
            http_status INTEGER,
            exit_code INTEGER,
            error TEXT,
            output TEXT,
            snapshot TEXT,
            details TEXT,
            owner_pid INTEGER,
            owner_host TEXT,
            created_at TEXT NOT NULL,
            due_at TEXT,
            caused_by INTEGER,
            pgid INTEGER,
            pgid_started INTEGER,
            adhoc TEXT,
            cancel_requested_at TEXT,
            rerun_of INTEGER
        );
        INSERT INTO runs_rebuilt (
            id, job_id, trigger, status, attempt, scheduled_for, started_at, finished_at,
            duration_ms, http_status, exit_code, error, output, snapshot, details, owner_pid,
            owner_host, created_at, due_at, caused_by, pgid, pgid_started
        )
        SELECT
            id, job_id, trigger, status, attempt, scheduled_for, started_at, finished_at,
            duration_ms, http_status, exit_code, error, output, snapshot, details, owner_pid,
            owner_host, created_at, due_at, caused_by, pgid, pgid_started
        FROM runs;
        DROP TABLE runs;
        ALTER TABLE runs_rebuilt RENAME TO runs;

        CREATE TABLE run_output (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            stream TEXT NOT NULL,
            at TEXT NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            type TEXT NOT NULL,
            job TEXT,
            run INTEGER,
            data TEXT
        );
        CREATE INDEX events_at ON events (at);
        """,
    )
    for sql in indexes:
        conn.execute(sql)
    conn.execute("CREATE INDEX runs_adhoc ON runs (id) WHERE job_id IS NULL")
    conn.execute("CREATE INDEX runs_cancel ON runs (id) WHERE cancel_requested_at IS NOT NULL")


def _m011_web_access(conn: sqlite3.Connection) -> None:
    # The API and dashboard: the API token (in `settings`), one-time login codes and the
    # sessions they open. Codes and session ids are stored hashed (SHA-256): a copy of the
    # database does not log anyone in.
    execute_script(
        conn,
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE login_codes (
            code_hash TEXT PRIMARY KEY,
            expires_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE sessions (
            id_hash TEXT PRIMARY KEY,
            csrf TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
    )


def _m012_fleet(conn: sqlite3.Connection) -> None:
    # Worker queues (a job fires only on a daemon serving its queue) and the fleet of
    # daemons: one row per daemon start, with its lease (PostgreSQL runs several at once).
    execute_script(
        conn,
        """
        ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
        CREATE TABLE daemons (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            queues TEXT NOT NULL DEFAULT '[]',
            started_at TEXT NOT NULL,
            last_beat_at TEXT NOT NULL,
            lease_until TEXT NOT NULL,
            stopped_at TEXT,
            listen TEXT,
            log_file TEXT,
            in_flight INTEGER NOT NULL DEFAULT 0,
            fired_last_minute INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE INDEX daemons_live ON daemons (lease_until) WHERE stopped_at IS NULL;
        """,
    )


# Ordered and append-only: never edit a migration that has shipped; add a new one.
def _m013_teams(conn: sqlite3.Connection) -> None:
    # Teams: ordered members (agents with role text, approval points) as JSON, and the runs
    # waiting at an approval point (looked for at every daemon step: a partial index keeps
    # that to the few waiting). Numbered 13: 12 is the fleet's.
    execute_script(
        conn,
        """
        CREATE TABLE teams (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            members TEXT NOT NULL DEFAULT '[]',
            approval_timeout REAL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE INDEX runs_waiting ON runs (id) WHERE status = 'waiting';
        """,
    )


def _m014_fewer_run_indexes(conn: sqlite3.Connection) -> None:
    # Every fire inserts a run and then finishes it: runs_active (status, for queued and
    # running rows) was kept up twice a fire while runs_running, runs_queued_due and
    # runs_status_id answer every question it did (PostgreSQL's schema never had it).
    conn.execute("DROP INDEX IF EXISTS runs_active")


def _m015_finished_runs_index(conn: sqlite3.Connection) -> None:
    # Every fire inserts a `running` row (no finished_at) and then finishes it: the
    # finished_at index kept an entry for it twice, under NULL and then its time. Every
    # read of it asks for `finished_at >= ?`, which the partial index serves.
    execute_script(
        conn,
        """
        DROP INDEX runs_finished_at;
        CREATE INDEX runs_finished_at ON runs (finished_at) WHERE finished_at IS NOT NULL;
        """,
    )


def _m016_status_index_of_the_rarer_runs(conn: sqlite3.Connection) -> None:
    # Every fire inserts a `running` row and turns it `succeeded`, most often: the (status,
    # id) index took three writes for it. It now holds the other statuses (what `runs
    # --status failed` and `status` look for); running runs have runs_running, and
    # succeeded ones are counted on the finished_at index and listed from the key.
    execute_script(
        conn,
        """
        DROP INDEX runs_status_id;
        CREATE INDEX runs_status_id ON runs (status, id)
            WHERE status NOT IN ('succeeded', 'running');
        """,
    )


def _m017_slot_index_by_time(conn: sqlite3.Connection) -> None:
    # Every fire writes its entry of runs_one_per_slot when it is claimed and again when it
    # ends (the predicate reads status). Keyed by job first, a job's entries sit in leaves
    # of their own once there is a history, so a batch of 150 fires dirtied ~150 leaves,
    # twice; keyed by slot first, a batch's entries share a few leaves at the end. The same
    # columns (the claim's ON CONFLICT names them as a set) and predicate.
    execute_script(
        conn,
        """
        DROP INDEX runs_one_per_slot;
        CREATE UNIQUE INDEX runs_one_per_slot ON runs (scheduled_for, job_id, trigger, attempt)
            WHERE trigger IN ('schedule', 'catchup', 'retry') AND status != 'missed';
        """,
    )


# The jobs_alert_watch index's condition on policies, which its readers repeat word for word.
ALERT_WATCH_KEY = "instr(policies, '\"alert_if_no_success\"') > 0"


def _m018_dead_man_index(conn: sqlite3.Connection) -> None:
    # The daemon looks for the jobs whose `--alert-if-no-success` window may have passed
    # every 10 s: a scan of every job (24 ms at 100,000 jobs, a quarter of an idle daemon's
    # CPU). The jobs it looks for, in an index of their own (none, usually). Its condition
    # finds the key's text, not the JSON's value: json_extract fails on a row that is not
    # JSON (edited by hand), which would fail this migration and every write of the row's
    # alerted_at (each run's counting); the look itself checks the value.
    conn.execute(
        f"CREATE INDEX jobs_alert_watch ON jobs (id) WHERE alerted_at IS NULL AND {ALERT_WATCH_KEY}"
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("initial", _m001_initial),
    ("run claims: due_at, one run per slot", _m002_run_claims),
    ("the daemon's log file in its heartbeat", _m003_daemon_log_file),
    ("webhook secrets, chains, dead-man alerts", _m004_hooks_and_chains),
    ("an index of running runs", _m005_running_index),
    ("history indexes for list, runs --status and status", _m006_history_indexes),
    ("exec jobs stored without `shell` keep running without one", _m007_exec_shell_explicit),
    ("webhook deliveries seen, against replays", _m008_webhook_deliveries),
    ("exec runs' process groups", _m009_run_process_group),
    ("ad hoc runs, cancel, rerun; output in pieces; the event stream", _m010_live_runs),
    ("the API token, login codes and sessions", _m011_web_access),
    ("worker queues and the fleet of daemons", _m012_fleet),
    ("teams", _m013_teams),
    ("one index fewer for the runs every fire writes", _m014_fewer_run_indexes),
    ("the finished_at index only of finished runs", _m015_finished_runs_index),
    (
        "the (status, id) index without succeeded and running runs",
        _m016_status_index_of_the_rarer_runs,
    ),
    ("the one-run-per-slot index keyed by slot first", _m017_slot_index_by_time),
    ("an index of the jobs a dead-man alert watches", _m018_dead_man_index),
]

SCHEMA_VERSION = len(MIGRATIONS)


def check_owned(conn: sqlite3.Connection, known: int | None = None) -> None:
    """Failed unless the file is empty or jobctl's, in a schema this version knows."""
    known = SCHEMA_VERSION if known is None else known
    version = schema_version(conn)
    if version > known:
        raise Failed(
            f"{_file_name(conn)} has schema version {version}, newer than this jobctl knows "
            f"({known}): upgrade jobctl"
        )
    if (version == 0 and _has_foreign_tables(conn)) or (
        version > 0 and not _has_table(conn, "jobs")
    ):
        raise Failed(f"{_file_name(conn)} is an SQLite database but not a jobctl one")


def _file_name(conn: sqlite3.Connection) -> str:
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return str(row[2]) or "the database"
    return "the database"


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: list[tuple[str, Migration]] | None = None) -> int:
    """Apply the migrations the stored schema lacks, each in its own transaction."""
    steps = MIGRATIONS if migrations is None else migrations
    version = schema_version(conn)
    if version == len(steps):
        return version
    check_owned(conn, len(steps))
    for index in range(version, len(steps)):
        with write_transaction(conn):
            # Another process may have migrated while we waited for the lock.
            if schema_version(conn) > index:
                continue
            steps[index][1](conn)
            conn.execute(f"PRAGMA user_version = {index + 1}")
    return len(steps)


def _has_foreign_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchone()
    return bool(row[0])


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None
