"""`jobctl db copy --to postgresql://...`: an SQLite history moved to PostgreSQL, resumable,
counted; afterwards every command reads the same from both."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from jobctl.paths import PostgresUrl
from jobctl.store import open_store
from tests.conftest import Invoke
from tests.pgserver import pg_query
from tests.realparts import run_jobctl
from tests.test_progress import on_terminal

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def history(jobctl: Invoke) -> None:
    jobctl("add", "a", "--exec", "echo a", "--every", "1h")
    jobctl("add", "b", "--exec", "echo b; exit 3", "--manual", "--after", "a")
    added = jobctl("agent", "add", "helper", "--command", "cat")
    assert added.exit_code == 0, added.stderr
    for _ in range(3):
        assert jobctl("run", "a").exit_code == 0
    assert jobctl("run", "b").exit_code == 1
    assert jobctl("run", "--exec", "echo adhoc").exit_code == 0


def test_copy_moves_everything_and_the_commands_agree(
    jobctl: Invoke, db_path: Path, pg_url: str
) -> None:
    history(jobctl)
    result = run_jobctl(db_path, "db", "copy", "--to", pg_url, "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["jobs"] == 2 and counts["runs"] == 8 and counts["agents"] == 1  # 3 chained
    assert result.stderr == ""  # no progress bar when piped
    for args in (
        ["list", "--json"],
        ["runs", "--json", "--limit", "0"],
        ["agent", "list", "--json"],
        ["events", "--json", "--limit", "0"],
        ["show", "b", "--json"],
    ):
        here = run_jobctl(db_path, *args)
        there = run_jobctl(db_path, "--db", pg_url, *args)
        assert here.returncode == there.returncode == 0, there.stderr
        assert here.stdout == there.stdout, args
    # New rows on PostgreSQL get ids after the copied ones.
    store = open_store(PostgresUrl(pg_url))
    assert store.add_event(store.events_after(0)[0].type, T0, job="x") > counts["events"]
    store.close()
    assert run_jobctl(db_path, "--db", pg_url, "run", "a").returncode == 0
    assert pg_query(pg_url, "SELECT max(id) FROM runs", ())[0][0] > 8


def test_an_interrupted_copy_resumes_and_a_repeat_changes_nothing(
    jobctl: Invoke, db_path: Path, pg_url: str
) -> None:
    history(jobctl)
    first = run_jobctl(db_path, "db", "copy", "--to", pg_url)
    assert first.returncode == 0, first.stderr
    pg_query(pg_url, "DELETE FROM events WHERE id > 3", ())  # as if it stopped part way
    pg_query(pg_url, "DELETE FROM runs WHERE id > 2", ())
    code, _, err = on_terminal(db_path, "db", "copy", "--to", pg_url, "--json")
    assert code == 0, err
    assert "copying runs" in err and "2 of 8 rows" in err, err  # it started where it stood
    assert pg_query(pg_url, "SELECT count(*) FROM runs", ())[0][0] == 8
    assert on_terminal(db_path, "db", "copy", "--to", pg_url, "--quiet")[::2] == (0, "")


def test_copy_refusals(jobctl: Invoke, db_path: Path, pg_url: str) -> None:
    assert run_jobctl(db_path, "db", "copy", "--to", str(db_path)).returncode == 2
    assert run_jobctl(db_path, "--db", pg_url, "db", "copy", "--to", pg_url).returncode == 2
    assert run_jobctl(db_path, "db", "copy", "--to", pg_url).returncode == 3  # no database
    jobctl("add", "a", "--exec", "true", "--manual")
    in_pg = run_jobctl(db_path, "--db", pg_url, "add", "a", "--exec", "false", "--manual")
    assert in_pg.returncode == 0
    clash = run_jobctl(db_path, "db", "copy", "--to", pg_url)
    assert clash.returncode == 1 and "not this database's" in clash.stderr
    assert pg_query(pg_url, "SELECT count(*) FROM events", ())[0][0] == 1  # nothing copied
