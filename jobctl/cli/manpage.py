"""The man page, generated from the click command tree: `python -m jobctl.cli.manpage > man/jobctl.1`.

Only the generator and the tests import this module; the command line never does. The
prose sections are written here; COMMANDS and OPTIONS come from the commands' own help, so
the page cannot drift from `--help` (tests/test_docs.py fails when man/jobctl.1 is stale).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator

import click

from jobctl import __version__

NAME_LINE = "jobctl \\- schedule HTTP requests, AI\\-agent prompts and commands, and see every run"

DESCRIPTION = (
    "jobctl is a background-job scheduler for one machine, run from the terminal. Its jobs "
    "fire HTTP requests, AI-agent prompts and commands on a schedule, on demand, or when a "
    "webhook calls, and every run is recorded in a local SQLite database, so nobody has to "
    "ask why a job did not run.",
    "The commands edit jobs in the database; `jobctl daemon` runs the loop that fires what "
    "is due and records each run, which `jobctl runs` reads back. A job has one action "
    "(`--url`, `--agent` with `--prompt`, or `--exec`), one trigger (`--cron`, `--every`, "
    "`--at` or `--manual`) and policies (timeout, retries, overlap, catch-up, jitter, "
    "auto-pause, retention).",
    "Every command takes `--db PATH` (before or after the command name) and `-h`, `--help`; "
    "every command that reads takes `--json` for machine output. Errors are printed on "
    "standard error as one line, with the exit status below; bad input never leaves the "
    "database half changed.",
)

SCHEDULES = (
    "`--cron EXPR`: five fields (minute, hour, day of month, month, day of week), or six "
    "with a leading seconds field (`*/10 * * * * *` fires every 10 seconds), or a preset: "
    "`@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`. "
    "`@reboot` is refused. The expression is evaluated in the job's time zone (`--tz`, an "
    "IANA name; default the machine's). When both day fields are restricted a day matches "
    "either of them, as in Debian's cron; `7` is Sunday.",
    "`--every D [--offset O]`: every D, aligned to the clock: `--every 15m --offset 5m` "
    "fires at :05, :20, :35 and :50 all year, in every zone. Durations are written like "
    "`30s`, `15m`, `2h`, `1d` or `1h30m`.",
    "`--at TIME`: once, at `YYYY-MM-DD HH:MM` in the job's zone or at an ISO-8601 time with "
    "an offset; the job is then completed.",
    "`--manual`: only when run with `jobctl run` or by a webhook.",
    "A schedule that can never fire (`0 0 30 2 *`) is refused when it is added. Preview "
    "fire times with `jobctl next`.",
)

DAYLIGHT_SAVING = (
    "Daylight saving follows Debian's cron daemon. A job is fixed-time when neither its "
    "minute nor its hour field starts with `*`. A fixed-time job whose local time is "
    "skipped by a spring-forward change fires once, at the first instant after the change; "
    "on a fall-back night it fires once, in the first pass. Any other job follows the wall "
    "clock: skipped local times do not fire, and repeated local times fire in both passes.",
    "`--every` intervals keep exact spacing across changes; intervals that divide an hour "
    "land on the same minutes all year. For a fixed local time of day, use `--cron`.",
)

EXIT_STATUS = (
    ("0", "Success."),
    (
        "1",
        "The job or operation ran and failed, or was refused in the current state (for "
        "example `jobctl run` of a failing job, `agent rm` of an agent a job still uses, "
        "a file that is not a usable jobctl database, a database this process may not "
        "write given to a command that writes).",
    ),
    ("2", "Bad usage or bad input; nothing was changed."),
    (
        "3",
        "Not found: no such job, run or agent, also when it is named inside an option "
        "(`add --agent nope`). A command that names several jobs changes none of them if "
        "any is unknown. Also a command that only reads given a database (`--db`, "
        "`JOBCTL_DB`) that does not exist.",
    ),
    (
        "4",
        "The daemon is needed and not running (`status --check`, `run --queue`), or "
        "another daemon already holds the database.",
    ),
    (
        "130",
        "Interrupted (Ctrl-C). Commands that only follow (`runs --follow`, `daemon logs -f`) "
        "exit 0 when interrupted.",
    ),
)

ENVIRONMENT = (
    ("JOBCTL_DB", "The database file, when `--db` is not given."),
    (
        "JOBCTL_ENV_FILE",
        "A file of `NAME=value` lines that `${NAME}` references are "
        "expanded from, when the daemon or `jobctl run` is not given "
        "`--env-file`.",
    ),
    ("NO_COLOR", "When set to a non-empty value, tables are printed without colour."),
    (
        "NOTIFY_SOCKET",
        "Set by systemd for a `Type=notify` service: the daemon reports "
        "readiness, status and stopping over it.",
    ),
    (
        "JOURNAL_STREAM",
        "Set by systemd when standard error goes to the journal: the daemon "
        "then logs without timestamps, with syslog priorities.",
    ),
)

FILES = (
    (
        "~/.local/share/jobctl/jobctl.db",
        "The default database on Linux (`jobctl.db` in the user data directory of "
        "platformdirs, which honours `$XDG_DATA_HOME`); on macOS "
        "`~/Library/Application Support/jobctl/jobctl.db`. Created with mode 0600.",
    ),
    ("<database>.lock", "The daemon's single-instance lock, beside the database."),
    (
        "<database>.pid",
        "The pidfile written by `jobctl daemon --detach`, unless `--pidfile` is given.",
    ),
    (
        "<database>.log",
        "The log file of a detached daemon, beside its database (one per database), "
        "unless `--log-file` is given; rotated as `<database>.log.1` and so on.",
    ),
    (
        "env file",
        "`NAME=value` lines for `${NAME}` references, given with `--env-file` or "
        "`JOBCTL_ENV_FILE`; keep it private (mode 0600).",
    ),
)

EXAMPLES = (
    (
        "An HTTP health check every 15 minutes, at :05, :20, :35 and :50:",
        "jobctl add ping --url https://example.com/health --every 15m --offset 5m",
    ),
    (
        "A command every weekday at 09:00 Berlin time, retried twice:",
        "jobctl add report --exec 'make report' --cwd ~/src/site --cron '0 9 * * 1-5' \\\n"
        "    --tz Europe/Berlin --retries 2",
    ),
    (
        "A POST with a secret taken from the daemon's environment when it fires:",
        "jobctl add deploy-hook --url https://ci.example.com/hooks/deploy --method POST \\\n"
        "    --header 'Authorization: Bearer ${CI_TOKEN}' --manual",
    ),
    (
        "Preview a schedule across a daylight saving change:",
        "jobctl next --cron '30 2 * * *' --tz America/New_York --after '2026-03-07 12:00'",
    ),
    (
        "Run the scheduler, then look at the failures of the last day:",
        "jobctl daemon &\njobctl runs --status failed --since 24h",
    ),
    (
        "Move a crontab into jobctl:",
        "crontab -l | jobctl import crontab - --dry-run\ncrontab -l | jobctl import crontab -",
    ),
)

BUGS = (
    (
        "An exec command runs in a process group of its own, and that group is what a timeout kills "
        "and what orphan cleanup ends after a crash. A descendant that leaves the group (`setsid`, "
        "a program that daemonizes itself) is not tracked: it outlives the run, and jobctl never "
        "ends it. Only a cgroup holds every descendant: under the unit `jobctl daemon "
        "--systemd-unit` writes, stopping the service ends them all (KillMode=mixed), and "
        "`systemd-cgls` shows them. Such a process keeps `JOBCTL_JOB` and `JOBCTL_RUN_ID` in its "
        "environment, so `grep -l JOBCTL_RUN_ID=42 /proc/*/environ` finds it."
    ),
)

SEE_ALSO = ("cron(8)", "crontab(5)", "systemd.timer(5)", "sqlite3(1)")

# Characters the page writes as ASCII, so that every output device can show them.
_ASCII = {
    "…": "...",
    "·": "*",
    "✓": "+",
    "✗": "x",
    "—": "\\-\\-",
    "–": "\\-",
    "‘": "\\(aq",
    "’": "\\(aq",
    "“": '"',
    "”": '"',
}
_CODE = re.compile(r"`([^`]+)`")


def escape(text: str) -> str:
    """Text for a roff text line: backslashes, hyphens, quotes and non-ASCII made safe."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\e")
        elif char == "-":
            out.append("\\-")
        elif char == "'":
            out.append("\\(aq")
        elif char == "`":
            out.append("\\(ga")
        elif char in _ASCII:
            out.append(_ASCII[char])
        elif ord(char) > 127:
            out.append(f"\\[u{ord(char):04X}]")
        else:
            out.append(char)
    return "".join(out)


def text_line(text: str) -> str:
    """One roff text line; `code` spans in bold. A leading dot would start a request."""
    pieces = []
    position = 0
    for match in _CODE.finditer(text):
        pieces.append(escape(text[position : match.start()]))
        # \% keeps code from being hyphenated at a line end.
        pieces.append(f"\\fB\\%{escape(match.group(1))}\\fR")
        position = match.end()
    pieces.append(escape(text[position:]))
    line = "".join(pieces).strip()
    return "\\&" + line if line.startswith(".") else line


def literal_line(text: str) -> str:
    """A line of a no-fill block: escaped, no markup, a leading dot neutralised."""
    line = escape(text)
    return "\\&" + line if line.startswith(".") else line


def macro_argument(text: str) -> str:
    """A quoted macro argument (for .SS and .TH)."""
    return '"' + escape(text).replace('"', "\\(dq") + '"'


def help_blocks(help_text: str) -> list[str]:
    """Click's help text (paragraphs, `\\b` blocks kept as written) as roff lines."""
    text = inspect.cleandoc(help_text).partition("\f")[0]
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        if not paragraph.strip():
            continue
        lines.append(".PP")
        if paragraph.startswith("\b"):
            lines.extend(_literal_block(paragraph.splitlines()[1:]))
        else:
            lines.append(text_line(" ".join(line.strip() for line in paragraph.splitlines())))
    return lines


def _literal_block(block: list[str]) -> list[str]:
    """A `\\b` block: unindented lines as they are, indented runs as an indented display."""
    lines = [".nf"]
    indents = [len(line) - len(line.lstrip()) for line in block if line.strip()]
    inner = min((indent for indent in indents if indent), default=0)
    indented = False
    for line in block:
        if not line.strip():
            continue
        if line[0].isspace() and not indented:
            lines.append(".RS 4")
            indented = True
        elif not line[0].isspace() and indented:
            lines.append(".RE")
            indented = False
        lines.append(literal_line(line[inner:] if indented else line))
    if indented:
        lines.append(".RE")
    lines.append(".fi")
    return lines


def _option_tag(record: str) -> str:
    """`-n, --name NEW` with the option names in bold and the metavars in italics."""
    words = []
    for word in record.split(" "):
        if word.startswith("-"):
            name, comma = (word[:-1], ",") if word.endswith(",") else (word, "")
            words.append(f"\\fB\\%{escape(name)}\\fR{comma}")
        elif word == "/":
            words.append("/")
        elif word:
            words.append(f"\\fI\\%{escape(word)}\\fR")
    return " ".join(words)


def option_items(command: click.Command, ctx: click.Context) -> list[str]:
    lines = []
    help_option = command.get_help_option(ctx)
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option) or param is help_option:
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        lines += [".TP", _option_tag(record[0]), text_line(record[1] or "")]
    return lines


def walk_commands(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Context, click.Command]]:
    """Every visible subcommand, depth first, in the order `--help` lists them."""
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = click.Context(sub, info_name=name, parent=ctx)
        yield sub_ctx, sub
        yield from walk_commands(sub, sub_ctx)


def command_section(command: click.Command, ctx: click.Context) -> list[str]:
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [
        f".SS {macro_argument(ctx.command_path)}",
        f"\\fB{escape(ctx.command_path)}\\fR {escape(usage)}",
    ]
    lines += help_blocks(command.help or "")
    options = option_items(command, ctx)
    if options:
        lines += [".PP", "Options:", ".RS 4", *options, ".RE"]
    return lines


def _tagged(items: tuple[tuple[str, str], ...], *, bold: bool = True) -> list[str]:
    lines = []
    for tag, text in items:
        shown = "\\%" + escape(tag)
        lines += [".TP", f"\\fB{shown}\\fR" if bold else f"\\fI{shown}\\fR", text_line(text)]
    return lines


def _paragraphs(texts: tuple[str, ...]) -> list[str]:
    lines = []
    for text in texts:
        lines += [".PP", text_line(text)]
    return lines


def render_manpage() -> str:
    from jobctl.cli import cli

    root = click.Context(cli, info_name="jobctl", **cli.context_settings)
    lines = [
        '.\\" Generated by `python -m jobctl.cli.manpage > man/jobctl.1`; do not edit by hand.',
        f'.TH JOBCTL 1 "" {macro_argument("jobctl " + __version__)} "User Commands"',
        ".SH NAME",
        NAME_LINE,
        ".SH SYNOPSIS",
        ".nf",
        "\\fBjobctl\\fR [\\fB\\-\\-db\\fR \\fIPATH\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        "\\fBjobctl\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR",
        "\\fBjobctl \\-\\-version\\fR",
        ".fi",
        ".SH DESCRIPTION",
        *_paragraphs(DESCRIPTION),
        ".SH OPTIONS",
        *option_items(cli, root),
        ".TP",
        "\\fB\\-h\\fR, \\fB\\-\\-help\\fR",
        "Show the help of jobctl or of a command, and exit.",
        ".SH COMMANDS",
    ]
    for ctx, command in walk_commands(cli, root):
        lines += command_section(command, ctx)
    lines += [
        ".SH SCHEDULES",
        *_paragraphs(SCHEDULES),
        '.SH "DAYLIGHT SAVING"',
        *_paragraphs(DAYLIGHT_SAVING),
        '.SH "EXIT STATUS"',
        *_tagged(EXIT_STATUS),
        ".SH ENVIRONMENT",
        *_tagged(ENVIRONMENT),
        ".SH FILES",
        *_tagged(FILES, bold=False),
        ".SH EXAMPLES",
    ]
    for comment, command_text in EXAMPLES:
        lines += [".PP", text_line(comment), ".RS 4", ".nf"]
        lines += [literal_line(line) for line in command_text.splitlines()]
        lines += [".fi", ".RE"]
    lines += [
        ".SH BUGS",
        *_paragraphs(BUGS),
        '.SH "SEE ALSO"',
        ",\n".join(f"\\fB{page.split('(')[0]}\\fR({page.split('(')[1]}" for page in SEE_ALSO),
    ]
    return "\n".join(_drop_paragraph_after_heading(lines)) + "\n"


def _drop_paragraph_after_heading(lines: list[str]) -> list[str]:
    """A heading already starts a paragraph: `.PP` right after `.SH`/`.SS` is redundant."""
    kept: list[str] = []
    for line in lines:
        if line == ".PP" and kept and kept[-1].startswith((".SH ", ".SS ")):
            continue
        kept.append(line)
    return kept


def main() -> None:
    sys.stdout.write(render_manpage())


if __name__ == "__main__":
    main()
