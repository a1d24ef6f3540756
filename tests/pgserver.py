"""A throwaway PostgreSQL database per test, on the server JOBCTL_TEST_POSTGRES names
(default: postgresql://postgres@127.0.0.1:5432/postgres, trust auth).

Where psycopg is missing or no server answers, the tests that need one are skipped with a
line that says how to run them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SERVER_ENV = "JOBCTL_TEST_POSTGRES"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
HOW_TO_RUN = (
    "no PostgreSQL server for the PostgreSQL tests: pip install 'jobctl[postgres]' and start "
    f"one at {DEFAULT_SERVER} (trust auth), or set {SERVER_ENV} to a server URL whose user "
    "may create databases"
)


def server_url() -> str:
    return os.environ.get(SERVER_ENV) or DEFAULT_SERVER


@cache
def server_problem() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return HOW_TO_RUN
    try:
        psycopg.connect(server_url(), connect_timeout=3).close()
    except psycopg.Error:
        return HOW_TO_RUN
    return None


def database_url(name: str) -> str:
    """The server's URL with another database name."""
    parts = urlsplit(server_url())
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new empty database (`jobctl_t_<random>`), dropped afterwards; yields its URL."""
    import psycopg

    name = f"jobctl_t_{secrets.token_hex(6)}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dump_rows(url: str) -> list[str]:
    """Every row of every table of jobctl's database at `url`, as text, in a stable order."""
    import psycopg

    lines = []
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            lines += sorted(f"{table}: {row!r}" for row in rows)
    return lines


def pg_query(url: str, sql: str, params: Sequence[Any]) -> list[Any]:
    """`sql` written with SQLite's `?` marks, run on PostgreSQL (autocommit): the rows it
    returns, read by name or position (none for a statement that returns none)."""
    import psycopg

    from jobctl.store.postgres.connection import named_row

    with psycopg.connect(url, autocommit=True, row_factory=named_row) as conn:
        cursor = conn.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []
