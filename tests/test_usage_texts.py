"""Usage errors name the command whose help explains them; counts agree with their nouns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Invoke, create_database
from tests.realparts import run_jobctl


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "x", "--cron"), "Option '--cron' requires an argument. (see `jobctl add --help`)"),
        (("--db",), "Option '--db' requires an argument. (see `jobctl --help`)"),
        (
            ("agent", "add", "a", "--url"),
            "Option '--url' requires an argument. (see `jobctl agent add --help`)",
        ),
        (("list", "--nope"), "No such option '--nope'. (see `jobctl list --help`)"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_a_usage_error_is_one_line_pointing_at_the_right_help(
    db_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_jobctl(db_path, *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"jobctl: {message}\n"


@pytest.mark.parametrize("text", ["abc", "-1", "0", "1.5", "99999999999999999999"])
def test_runs_show_refuses_a_bad_run_id_in_jobctls_words(db_path: Path, text: str) -> None:
    create_database(db_path)
    result = run_jobctl(db_path, "runs", "show", text)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"jobctl: invalid run id {text!r}: run ids are positive whole numbers\n"
    )


def test_backup_counts_one_job_and_one_run_in_the_singular(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    create_database(db_path)
    empty = jobctl("backup", str(tmp_path / "empty.db"))
    assert ", 0 jobs, 0 runs)" in empty.stdout
    jobctl("add", "x", "--exec", "true", "--manual")
    assert jobctl("run", "x").exit_code == 0
    result = jobctl("backup", str(tmp_path / "one.db"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith(", 1 job, 1 run)\n")
    restored = jobctl("restore", str(tmp_path / "one.db"), "--yes")
    assert "restored 1 job and 1 run from" in restored.stdout
