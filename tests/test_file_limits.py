"""Files a command reads are capped: 1 MiB for a body or prompt (as much as a webhook's
body), 64 MiB for a jobs file or a crontab; larger input is refused with exit 2."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Invoke, create_database
from tests.realparts import ROOT, jobctl_command, query

MiB = 1024 * 1024


def run_capped(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess that may use 1 GiB of memory: reading /dev/zero without a
    limit fails fast here instead of swapping the machine."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1024 * MiB, 1024 * MiB))

    with open(stdin or os.devnull, "rb") as source:
        return subprocess.run(
            jobctl_command(*args),
            capture_output=True,
            text=True,
            env={**os.environ, "JOBCTL_DB": str(db)},
            cwd=ROOT,
            timeout=60,
            stdin=source,
            preexec_fn=limit_memory,
        )


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("add", "z", "--url", "http://127.0.0.1:1/", "--manual", "--body", "@/dev/zero"),
            None,
            "jobctl: --body file '/dev/zero' is larger than 1 MiB: refused\n",
        ),
        (
            ("add", "z", "--url", "http://127.0.0.1:1/", "--manual", "--body", "-"),
            "/dev/zero",
            "jobctl: --body from standard input is larger than 1 MiB: refused\n",
        ),
        (("apply", "-f", "/dev/zero"), None, "jobctl: /dev/zero is larger than 64 MiB: refused\n"),
        (
            ("import", "crontab", "/dev/zero"),
            None,
            "jobctl: crontab '/dev/zero' is larger than 64 MiB: refused\n",
        ),
        (
            ("import", "crontab", "-"),
            "/dev/zero",
            "jobctl: the crontab on standard input is larger than 64 MiB: refused\n",
        ),
    ],
)
def test_endless_input_is_refused(
    db_path: Path, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    create_database(db_path)
    result = run_capped(db_path, *args, stdin=stdin)
    assert (result.returncode, result.stderr) == (2, message)
    assert query(db_path, "SELECT name FROM jobs") == []


def test_a_file_just_over_the_limit_is_refused_at_the_limit_accepted(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b"x" * (MiB + 1))
    add = ("add", "big", "--url", "http://127.0.0.1:1/", "--manual", "--body", f"@{body}")
    result = jobctl(*add)
    assert (result.exit_code, result.stderr) == (
        2,
        f"jobctl: --body file '{body}' is larger than 1 MiB: refused\n",
    )
    body.write_bytes(b"x" * MiB)
    assert jobctl(*add).exit_code == 0

    jobs = tmp_path / "jobs.toml"
    with open(jobs, "wb") as handle:  # sparse: 64 MiB and one byte, all NUL
        handle.truncate(64 * MiB + 1)
    result = jobctl("apply", "-f", str(jobs))
    assert (result.exit_code, result.stderr) == (
        2,
        f"jobctl: {jobs} is larger than 64 MiB: refused\n",
    )
    assert [row["name"] for row in query(db_path, "SELECT name FROM jobs")] == ["big"]
