"""Generated documentation is checked, not trusted: the man page, the completion scripts,
every command's examples, and the README's tour, run for real."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jobctl.cli import cli
from jobctl.cli.complete import complete_agent_names, complete_job_names, complete_run_ids
from jobctl.cli.completions import SHELLS, completion_script, script_name
from jobctl.cli.manpage import render_manpage, walk_commands
from jobctl.cli.shared import DB_KEY, db_option
from tests.conftest import Invoke

ROOT = Path(__file__).resolve().parents[1]
MAN_PAGE = ROOT / "man" / "jobctl.1"
REGENERATE_MAN = "python -m jobctl.cli.manpage > man/jobctl.1"
REGENERATE_COMPLETIONS = "python -m jobctl.cli.completions"


# ---------------------------------------------------------------- generated files


def test_man_page_is_up_to_date() -> None:
    assert MAN_PAGE.read_text(encoding="utf-8") == render_manpage(), (
        f"man/jobctl.1 is stale: run `{REGENERATE_MAN}`"
    )


def test_install_puts_the_man_page_where_man_finds_it(tmp_path: Path) -> None:
    """A (non-editable) install, as the README's, lays <env>/share/man/man1/jobctl.1."""
    source = tmp_path / "source"  # build from a copy: setuptools writes build/ beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("jobctl", "man"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, source],
        check=True,
        capture_output=True,
    )
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    subprocess.run(
        [*pip, "--python", env / "bin" / "python", "install", "--no-deps", "--no-index",
         *wheels.glob("jobctl-*.whl")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    installed = env / "share" / "man" / "man1" / "jobctl.1"
    assert installed.read_bytes() == MAN_PAGE.read_bytes()
    # The dashboard's templates and static files ship in the package (issue 15).
    package = next(env.glob("lib/python*/site-packages/jobctl"))
    for folder in ("templates", "static"):
        for path in (ROOT / "jobctl" / "web" / folder).iterdir():
            assert (package / "web" / folder / path.name).is_file(), path.name
    if shutil.which("man") is None:
        return
    found = subprocess.run(
        ["man", "-w", "jobctl"],
        env={"PATH": f"{env / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert found.stdout.strip() == str(installed), found.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_scripts_are_up_to_date(shell: str) -> None:
    path = ROOT / "completions" / script_name(shell)
    assert path.read_text(encoding="utf-8") == completion_script(shell), (
        f"{path.relative_to(ROOT)} is stale: run `{REGENERATE_COMPLETIONS}`"
    )


def test_man_page_renders_without_warnings() -> None:
    checked = []
    if shutil.which("groff"):
        result = subprocess.run(
            ["groff", "-man", "-ww", "-z", str(MAN_PAGE)], capture_output=True, text=True
        )
        assert (result.returncode, result.stderr) == (0, "")
        checked.append("groff")
    if shutil.which("mandoc"):
        result = subprocess.run(
            ["mandoc", "-T", "lint", "-W", "warning", str(MAN_PAGE)], capture_output=True, text=True
        )
        # The page carries the version, not a date, so that regenerating it is deterministic.
        problems = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if "missing date" not in line
        ]
        assert problems == []
        checked.append("mandoc")
    if not checked:
        pytest.skip("neither groff (Debian: groff-base) nor mandoc is installed")


def test_man_page_documents_every_command_and_the_contract() -> None:
    page = MAN_PAGE.read_text(encoding="utf-8")
    for ctx, _command in walk_commands(cli, click.Context(cli, info_name="jobctl")):
        assert f'.SS "{ctx.command_path}"' in page
    for section in (
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "SCHEDULES",
        '"DAYLIGHT SAVING"',
        '"EXIT STATUS"',
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        '"SEE ALSO"',
    ):
        assert f"\n.SH {section}\n" in page
    for variable in ("JOBCTL_DB", "JOBCTL_ENV_FILE", "NO_COLOR", "NOTIFY_SOCKET", "JOURNAL_STREAM"):
        assert f"\\fB\\%{variable}\\fR" in page
    # roff: no line may start a request by accident, and minus signs are escaped.
    for line in page.splitlines():
        if line.startswith(("'", ".")):
            assert re.match(r"\.(\\\"|[A-Z]{2}\b|nf|fi|RS|RE)", line), line
    assert "--" not in page.replace("\\-\\-", "")


# ---------------------------------------------------------------- help and examples


def all_commands() -> list[tuple[str, click.Command]]:
    root = click.Context(cli, info_name="jobctl", **cli.context_settings)
    return [("jobctl", cli)] + [
        (ctx.command_path, command) for ctx, command in walk_commands(cli, root)
    ]


@pytest.mark.parametrize(
    ("path", "command"), all_commands(), ids=[path for path, _ in all_commands()]
)
def test_every_command_has_help_ending_with_examples(path: str, command: click.Command) -> None:
    help_text = inspect.cleandoc(command.help or "").partition("\f")[0]
    assert help_text, f"{path} has no help text"
    last = re.split(r"\n\s*\n", help_text.strip())[-1].removeprefix("\b").strip("\n")
    lines = last.splitlines()
    assert lines and lines[0].strip() == "Examples:", (
        f"{path}: the help must end with a \\b block 'Examples:' and lines starting 'jobctl '"
    )
    assert any(line.strip().startswith("jobctl ") for line in lines[1:]), path


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = re.findall(r"^  (\S+)", result.output.split("Commands:", 1)[1], re.MULTILINE)
    visible = [
        name for name in cli.list_commands(click.Context(cli)) if not cli.commands[name].hidden
    ]
    assert listed == visible


# ---------------------------------------------------------------- the README's tour


def readme_tour() -> list[str]:
    """The `jobctl ...` lines of the fenced sh blocks under "A short tour"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## A short tour", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("jobctl "):
                commands.append(line)
    return commands


def test_readme_tour_runs(tmp_path: Path) -> None:
    commands = readme_tour()
    assert len(commands) >= 5
    env = dict(os.environ)
    # `jobctl` from this environment: /work/venv/bin in development, .venv/bin in CI.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["JOBCTL_DB"] = str(tmp_path / "tour.db")
    env["NO_COLOR"] = "1"
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", command],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"


# ---------------------------------------------------------------- dynamic completion


def context_for(path: Path) -> click.Context:
    ctx = click.Context(cli, info_name="jobctl")
    ctx.meta[DB_KEY] = str(path)
    return ctx


NAME_ARGUMENT = click.Argument(["names"], nargs=-1)


def values(items: list) -> list[str]:
    return [item.value for item in items]


def add_runs(path: Path, job: str, count: int) -> None:
    conn = sqlite3.connect(path)
    with conn:
        (job_id,) = conn.execute("SELECT id FROM jobs WHERE name = ?", (job,)).fetchone()
        conn.executemany(
            "INSERT INTO runs (job_id, trigger, status, scheduled_for, created_at) "
            "VALUES (?, 'manual', 'succeeded', '2026-01-01T00:00:00.000000Z', "
            "'2026-01-01T00:00:00.000000Z')",
            [(job_id,)] * count,
        )
    conn.close()


def test_job_and_agent_names_complete_from_the_database(jobctl: Invoke, db_path: Path) -> None:
    for name in ("backup", "backup-db", "report"):
        assert (
            jobctl(
                "add", name, "--exec", "true", "--manual", "--description", f"the {name} job"
            ).exit_code
            == 0
        )
    ctx = context_for(db_path)
    assert values(complete_job_names(ctx, NAME_ARGUMENT, "")) == ["backup", "backup-db", "report"]
    items = complete_job_names(ctx, NAME_ARGUMENT, "back")
    assert [(item.value, item.help) for item in items] == [
        ("backup", "the backup job"),
        ("backup-db", "the backup-db job"),
    ]
    assert complete_job_names(ctx, NAME_ARGUMENT, "zzz") == []
    ctx.params["names"] = ("backup",)  # `jobctl rm backup <TAB>`
    assert values(complete_job_names(ctx, NAME_ARGUMENT, "")) == ["backup-db", "report"]
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO agents (name, kind, created_at, updated_at) "
            "VALUES ('local', 'openai', 'x', 'x'), ('claude', 'command', 'x', 'x')"
        )
    conn.close()
    agents = complete_agent_names(context_for(db_path), click.Argument(["agent"]), "")
    assert [(item.value, item.help) for item in agents] == [
        ("claude", "command"),
        ("local", "openai"),
    ]


def test_run_ids_complete_newest_first(jobctl: Invoke, db_path: Path) -> None:
    assert jobctl("add", "a", "--exec", "true", "--manual").exit_code == 0
    add_runs(db_path, "a", 120)
    ctx = context_for(db_path)
    argument = click.Argument(["run_id"])
    assert values(complete_run_ids(ctx, argument, "1")) == (
        [str(n) for n in range(120, 99, -1)] + [str(n) for n in range(19, 9, -1)] + ["1"]
    )
    assert values(complete_run_ids(ctx, argument, "11")) == (
        [str(n) for n in range(119, 109, -1)] + ["11"]
    )
    everything = complete_run_ids(ctx, argument, "")
    assert values(everything)[:2] == ["120", "119"]
    assert everything[0].help == "a succeeded 2026-01-01T00:00"
    assert complete_run_ids(ctx, argument, "x") == []
    assert complete_run_ids(ctx, argument, "0") == []


def test_completion_never_creates_a_database_and_swallows_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "jobctl.db"
    for complete in (complete_job_names, complete_agent_names, complete_run_ids):
        assert complete(context_for(missing), NAME_ARGUMENT, "") == []
    assert not missing.parent.exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database")
    not_jobctl = tmp_path / "other.db"
    sqlite3.connect(not_jobctl).execute("CREATE TABLE t (x)").connection.close()
    for path in (garbage, not_jobctl):
        for complete in (complete_job_names, complete_agent_names, complete_run_ids):
            assert complete(context_for(path), NAME_ARGUMENT, "") == []
    assert garbage.read_text() == "not a database"


def test_completion_uses_the_db_given_on_the_command_line(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    """Through click's own completion protocol, as bash calls it on TAB."""
    assert jobctl("add", "from-env", "--exec", "true", "--manual").exit_code == 0
    other = tmp_path / "other.db"
    assert jobctl("--db", str(other), "add", "alpha", "--exec", "true", "--manual").exit_code == 0
    assert jobctl("--db", str(other), "add", "beta", "--exec", "true", "--manual").exit_code == 0

    @click.group()
    @db_option
    def tool() -> None:
        pass

    @tool.command()
    @click.argument("names", nargs=-1, shell_complete=complete_job_names)
    @db_option
    def pick(names: tuple[str, ...]) -> None:
        pass

    def tab(words: str) -> list[str]:
        parts = words.split(" ")
        env = {
            "_TOOL_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
        }
        result = CliRunner().invoke(tool, [], prog_name="tool", env=env)
        assert result.exit_code == 0, result.output
        return result.output.split()

    assert tab("tool pick ") == ["plain,from-env"]
    assert tab(f"tool --db {other} pick ") == ["plain,alpha", "plain,beta"]
    assert tab(f"tool pick --db {other} a") == ["plain,alpha"]
    assert tab(f"tool --db {other} pick alpha ") == ["plain,beta"]
