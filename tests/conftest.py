"""Shared fixtures: every test gets its own database file in tmp_path."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobctl.cli import cli
from jobctl.paths import DbLocation, PostgresUrl
from tests.realparts import Sink, start_sink


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


Invoke = Callable[..., CliResult]


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data" / "jobctl.db"
    monkeypatch.setenv("JOBCTL_DB", str(path))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)  # tables fit only when asked
    return path


@pytest.fixture
def jobctl(db_path: Path) -> Invoke:
    """Run the CLI in-process (fast) against the test's database."""

    def invoke(*args: str, input: str | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


def create_database(path: Path) -> None:
    """An empty jobctl database at `path` (reading commands no longer create one)."""
    from jobctl.store.sqlite import connect

    connect(path).close()


def dump_database(path: Path) -> list[str]:
    """Every row of every table, to check that a refused command changed nothing (of the
    PostgreSQL database when JOBCTL_DB names one: the test runs on both stores)."""
    from jobctl.paths import is_postgres_url

    location = os.environ.get("JOBCTL_DB", "")
    if is_postgres_url(location):
        from tests.pgserver import dump_rows

        return dump_rows(location)
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A real HTTP server on 127.0.0.1 that records what it receives."""
    server = start_sink()
    yield server
    server.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a throwaway PostgreSQL database (skipped where no server answers)."""
    from tests.pgserver import server_problem, throwaway_database

    problem = server_problem()
    if problem is not None:
        pytest.skip(problem)
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> DbLocation:
    """Where a store-level test keeps its database: an SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return tmp_path / "jobctl.db"
    return PostgresUrl(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(
    request: pytest.FixtureRequest, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Runs a CLI test on an SQLite file, then on a throwaway PostgreSQL database (JOBCTL_DB
    names it). Only for tests that look at the database through jobctl (or dump_database)."""
    if request.param == "postgres":
        monkeypatch.setenv("JOBCTL_DB", request.getfixturevalue("pg_url"))
    return str(request.param)


# A CLI test that runs on both stores.
BOTH_STORES = pytest.mark.usefixtures("any_store")
