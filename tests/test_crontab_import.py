"""`jobctl import crontab`: a user's crontab becomes exec jobs, all or nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobctl.crontab import name_stem, parse_crontab, unescape_percent, unique_name
from tests.conftest import BOTH_STORES, Invoke, create_database, dump_database

HOME = os.path.expanduser("~")

CRONTAB = r"""# Edit this file to introduce tasks to be run by cron.
#
# m h  dom mon dow   command
MAILTO=ops@example.com
PATH=/usr/local/bin:/usr/bin:/bin
BACKUP_DIR = "/srv/backups "

# Nightly database backup
30 2 * * * /usr/local/bin/backup.sh --all > /dev/null 2>&1
# 0 4 * * * /usr/local/bin/old-backup.sh
*/15 9-17 * * 1-5 curl -fsS https://example.com/ping
@reboot /usr/bin/startup.sh

CRON_TZ=America/New_York
# Weekly report,
# for the New York office
0 8 * * mon /usr/local/bin/report.sh
@daily find /tmp -mtime +7 -delete
0 0 1 * * date +%Y-%m >> /var/log/monthly
5 0 1 * * date +\%Y-\%m >> /var/log/monthly
TZ=Europe/Berlin
HOME=/srv/app
0 */6 * * * cd /srv/app && ./sync.sh
CRON_TZ=
@hourly /usr/local/bin/backup.sh --incremental
"""


def import_json(jobctl: Invoke, *args: str, text: str = CRONTAB) -> list[dict]:
    result = jobctl("import", "crontab", "-", "--json", *args, input=text)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def summary(job: dict) -> tuple:
    spec = job["spec"]
    return (
        job["name"],
        job["schedule"],
        job["timezone"],
        spec["command"],
        spec["shell"],
        spec["env"],
        spec["cwd"],
        job["description"],
    )


@BOTH_STORES
def test_realistic_crontab_becomes_jobs(jobctl: Invoke) -> None:
    result = jobctl("import", "crontab", "-", "--json", "--tz", "UTC", input=CRONTAB)
    assert result.exit_code == 0, result.stderr
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "BACKUP_DIR": "/srv/backups "}
    berlin_env = {**env, "TZ": "Europe/Berlin", "HOME": "/srv/app"}
    expected = [
        (
            "backup.sh",
            "30 2 * * *",
            "UTC",
            "/usr/local/bin/backup.sh --all > /dev/null 2>&1",
            True,
            env,
            HOME,
            "Nightly database backup",
        ),
        (
            "curl",
            "*/15 9-17 * * 1-5",
            "UTC",
            "curl -fsS https://example.com/ping",
            True,
            env,
            HOME,
            "",
        ),
        (
            "report.sh",
            "0 8 * * mon",
            "America/New_York",
            "/usr/local/bin/report.sh",
            True,
            env,
            HOME,
            "Weekly report, for the New York office",
        ),
        ("find", "@daily", "America/New_York", "find /tmp -mtime +7 -delete", True, env, HOME, ""),
        (
            "date",
            "5 0 1 * *",
            "America/New_York",
            "date +%Y-%m >> /var/log/monthly",
            True,
            env,
            HOME,
            "",
        ),
        (
            "sync.sh",
            "0 */6 * * *",
            "Europe/Berlin",
            "cd /srv/app && ./sync.sh",
            True,
            berlin_env,
            "/srv/app",
            "",
        ),
        (
            "backup.sh-2",
            "@hourly",
            "UTC",
            "/usr/local/bin/backup.sh --incremental",
            True,
            berlin_env,
            "/srv/app",
            "",
        ),
    ]
    assert [summary(job) for job in json.loads(result.stdout)] == expected
    # What was stored is what was printed.
    listed = json.loads(jobctl("list", "--json").stdout)
    assert sorted(summary(job) for job in listed) == sorted(expected)
    # Skipped lines are named on stderr, with the reason.
    warnings = result.stderr.splitlines()
    assert [line.split(":")[2].strip() for line in warnings] == ["line 4", "line 12", "line 19"]
    assert "MAILTO is not supported" in warnings[0]
    assert "@reboot is not supported" in warnings[1]
    assert "unescaped % is not supported" in warnings[2]


def test_dry_run_prints_one_line_per_job_and_writes_nothing(jobctl: Invoke, db_path: Path) -> None:
    create_database(db_path)
    before = dump_database(db_path)
    result = jobctl("import", "crontab", "-", "--dry-run", "--tz", "UTC", input=CRONTAB)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "would",
        "add",
        "backup.sh",
        "30",
        "2",
        "*",
        "*",
        "*",
        "UTC",
        "/usr/local/bin/backup.sh",
        "--all",
        ">",
        "/dev/null",
        "2>&1",
    ]
    assert lines[3].split()[:6] == ["would", "add", "find", "@daily", "America/New_York", "find"]
    assert lines[-1] == "would import 7 jobs; skipped 3 lines (see the warnings)"
    assert dump_database(db_path) == before
    dry_json = import_json(jobctl, "--dry-run", "--tz", "UTC")
    assert [job["name"] for job in dry_json][:2] == ["backup.sh", "curl"]
    assert dump_database(db_path) == before


@BOTH_STORES
def test_bad_line_fails_the_whole_import_naming_it(jobctl: Invoke, db_path: Path) -> None:
    assert jobctl("add", "keep", "--exec", "true", "--manual").exit_code == 0
    before = dump_database(db_path)
    for text, line, reason in [
        ("0 3 * * * ok\n0 25 * * * bad-hour\n", 2, "bad hour field"),
        ("0 3 * * * ok\n\n0 3 * *\n", 3, "not a crontab line"),
        ("0 3 * * * ok\n@fortnightly x\n", 2, "unknown preset"),
        ("CRON_TZ=Mars/Olympus\n0 3 * * * ok\n", 1, "unknown time zone 'Mars/Olympus'"),
        ("0 0 30 2 * never\n", 1, "never"),
    ]:
        result = jobctl("import", "crontab", "-", input=text)
        assert result.exit_code == 2, (text, result.stdout)
        assert result.stderr.startswith(f"jobctl: line {line}: "), result.stderr
        assert reason in result.stderr
        assert "Traceback" not in result.stderr
        assert dump_database(db_path) == before


def test_names_are_unique_against_existing_jobs_and_each_other(jobctl: Invoke) -> None:
    assert jobctl("add", "backup.sh", "--exec", "true", "--manual").exit_code == 0
    assert jobctl("add", "backup.sh-2", "--exec", "true", "--manual").exit_code == 0
    text = (
        "0 1 * * * /opt/backup.sh a\n0 2 * * * /opt/backup.sh b\n"
        "0 3 * * * LANG=C /usr/bin/List x\n0 4 * * * 'My Tool!' --x\n"
    )
    names = [job["name"] for job in import_json(jobctl, text=text)]
    # `list` is a `jobctl runs` subcommand, so never a job name.
    assert names == ["backup.sh-3", "backup.sh-4", "list-2", "my-tool"]
    prefixed = [job["name"] for job in import_json(jobctl, "--prefix", "cron-", text=text)]
    assert prefixed == ["cron-backup.sh", "cron-backup.sh-2", "cron-list", "cron-my-tool"]
    assert jobctl("import", "crontab", "-", "--prefix", "Bad Prefix", input=text).exit_code == 2


def test_reads_a_file_or_standard_input(jobctl: Invoke, tmp_path: Path) -> None:
    crontab = tmp_path / "crontab.txt"
    crontab.write_text("# hello\n@weekly echo hi\n")
    result = jobctl("import", "crontab", str(crontab), "--tz", "UTC")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["added echo  @weekly  UTC  echo hi", "imported 1 job"]
    # No FILE: standard input, when it is not a terminal.
    assert [job["name"] for job in import_json(jobctl, text="@weekly echo hi\n")] == ["echo-2"]
    missing = jobctl("import", "crontab", str(tmp_path / "nope"))
    assert missing.exit_code == 2
    assert "cannot read crontab" in missing.stderr


def test_an_empty_crontab_imports_nothing(jobctl: Invoke) -> None:
    result = jobctl("import", "crontab", "-", input='# nothing here\nMAILTO=""\n')
    assert result.exit_code == 0
    assert result.stdout.strip() == "imported 0 jobs; skipped 1 line (see the warnings)"
    assert import_json(jobctl, text="") == []


def test_another_shell_runs_the_command_with_dash_c(jobctl: Invoke) -> None:
    (job,) = import_json(jobctl, text="SHELL=/bin/bash\n0 1 * * * echo $((1+1)) 'x y'\n")
    assert job["spec"]["command"] == "/bin/bash -c 'echo $((1+1)) '\"'\"'x y'\"'\"''"
    assert job["spec"]["shell"] is False
    (job,) = import_json(jobctl, text="SHELL=/bin/sh\n0 1 * * * echo hi\n")
    assert (job["spec"]["command"], job["spec"]["shell"]) == ("echo hi", True)


def test_secret_references_are_pointed_out(jobctl: Invoke) -> None:
    result = jobctl(
        "import", "crontab", "-", "--dry-run", input="DIR=/x\n0 1 * * * ls ${DIR} $DIR\n"
    )
    assert result.exit_code == 0
    assert "line 2: jobctl expands ${DIR} itself" in result.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("date +%Y", None),
        ("date +\\%Y", "date +%Y"),
        ("echo \\\\%x", None),  # an escaped backslash leaves the % unescaped, as in cron
        ("echo a\\b \\%", "echo a\\b %"),
        ("plain", "plain"),
    ],
)
def test_unescape_percent_follows_cron(command: str, expected: str | None) -> None:
    assert unescape_percent(command) == expected


@pytest.mark.parametrize(
    ("command", "stem"),
    [
        ("/usr/local/bin/Backup.sh --all", "backup.sh"),
        ("FOO=1 BAR=2 python3 -m thing", "python3"),
        ("cd /srv/site && ./deploy.sh", "deploy.sh"),
        ("cd /srv/site; make", "make"),
        ("[ -x /x ] && /x", "x"),
        ("'unterminated", "unterminated"),
        ("___", "job"),
    ],
)
def test_name_stem(command: str, stem: str) -> None:
    assert name_stem(command) == stem


def test_long_names_are_cut_to_fit_with_their_suffix() -> None:
    stem = "a" * 70
    assert unique_name(stem, "p-", set()) == "p-" + "a" * 62
    assert unique_name(stem, "p-", {"p-" + "a" * 62}) == "p-" + "a" * 60 + "-2"


def test_parse_keeps_descriptions_only_directly_above() -> None:
    parsed = parse_crontab(
        "# about a\n0 1 * * * a\n# orphan\n\n0 2 * * * b\n"
        "# m h  dom mon dow   command\n0 3 * * * c\n"
    )
    assert [(entry.command, entry.description) for entry in parsed.entries] == [
        ("a", "about a"),
        ("b", ""),
        ("c", ""),
    ]
