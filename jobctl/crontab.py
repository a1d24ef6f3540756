"""Reading a user's crontab (`crontab -l` output) into exec jobs: `jobctl import crontab`.

Each entry becomes an exec job run through a shell, as cron runs it, with the environment,
time zone and working directory cron would give it. Lines jobctl cannot honour are skipped
and reported (`@reboot`, `MAILTO`, a command with an unescaped `%`); anything else that is
wrong fails the whole import, naming the line, and nothing is written. Jobs are validated
as a `JobChange` by `job_changes.build_job`, exactly as `jobctl add`'s are, and added in one transaction.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobctl.catalog import insert_job
from jobctl.errors import InvalidInput, JobctlError
from jobctl.job_changes import build_job
from jobctl.jobs import NAME_PATTERN, RESERVED_NAMES
from jobctl.models import Job, JobChange
from jobctl.progress import OnProgress, Tally, no_progress
from jobctl.secrets import references
from jobctl.timeutil import get_zone

if TYPE_CHECKING:
    from jobctl.store.protocol import Store

_ENV_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_ENTRY = re.compile(r"\s*(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(\S.*)")
_PRESET = re.compile(r"\s*(@[A-Za-z]+)\s+(\S.*)")
# The column header of Debian's crontab template, and commented-out entries: not descriptions.
_TEMPLATE_HEADER = re.compile(r"m\s+h\s+dom\s+mon\s+dow\s+command\s*")
_LOOKS_LIKE_ENTRY = re.compile(r"(@[A-Za-z]+|[0-9*/,-]+\s+[0-9*/,-]+(\s+\S+){3})\s+\S.*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_NOT_NAME = re.compile(r"[^a-z0-9._-]+")

# Settings cron itself reads rather than passing to commands as they are.
_ZONE_SETTINGS = ("CRON_TZ", "TZ")
_MAIL_SETTINGS = ("MAILTO", "MAILFROM")
_DEFAULT_SHELLS = ("", "/bin/sh", "sh")
# Commands that only prepare the one after `&&` or `;`: the name comes from that one.
_PREAMBLES = ("cd", "[", "test")
MAX_NAME = 64


@dataclass(frozen=True)
class CrontabEntry:
    """One schedule line, with what the lines above it set."""

    line: int
    schedule: str
    command: str  # the shell text cron runs, `\\%` already turned into `%`
    description: str = ""
    timezone: str | None = None
    shell: str | None = None
    env: tuple[tuple[str, str], ...] = ()

    @property
    def home(self) -> str | None:
        return dict(self.env).get("HOME") or None


@dataclass(frozen=True)
class SkippedLine:
    line: int
    text: str
    reason: str


@dataclass
class Crontab:
    entries: list[CrontabEntry] = field(default_factory=list)
    skipped: list[SkippedLine] = field(default_factory=list)


@dataclass(frozen=True)
class ImportedJob:
    line: int
    job: Job


@dataclass
class CrontabImport:
    jobs: list[ImportedJob]
    skipped: list[SkippedLine]
    warnings: list[str]


# ---------------------------------------------------------------------------- parsing


def read_crontab_file(path: str) -> str:
    from jobctl.textfiles import DOCUMENT_LIMIT, read_text

    try:
        what = "the crontab on standard input" if path == "-" else f"crontab {path!r}"
        return read_text(path, limit=DOCUMENT_LIMIT, what=what)
    except OSError as exc:
        raise InvalidInput(f"cannot read crontab {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"cannot read crontab {path!r}: not UTF-8 text") from None


def unescape_percent(command: str) -> str | None:
    """`\\%` becomes `%`; None when an unescaped `%` (cron's stdin marker) is present.

    As in cron's do_command.c: a backslash protects the character after it, and only a
    protected `%` loses its backslash.
    """
    out: list[str] = []
    escaped = False
    for char in command:
        if escaped:
            if char == "%":
                out[-1] = "%"
            else:
                out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char == "%":
            return None
        else:
            out.append(char)
    return "".join(out)


def _env_value(raw: str) -> str:
    """crontab(5): the value may be quoted (to keep blanks); no escapes are processed."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _is_description(comment: str) -> bool:
    return bool(comment) and not (
        _TEMPLATE_HEADER.fullmatch(comment) or _LOOKS_LIKE_ENTRY.fullmatch(comment)
    )


def parse_crontab(text: str) -> Crontab:
    """Entries with their settings, and the lines skipped as unsupported, in file order."""
    result = Crontab()
    env: dict[str, str] = {}
    zone: str | None = None
    shell: str | None = None
    comments: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            comment = line.lstrip("#").strip()
            if _is_description(comment):
                comments.append(comment)
            else:
                comments = []
            continue
        description = " ".join(comments)
        comments = []
        if not line:
            continue
        setting = _ENV_LINE.fullmatch(raw)
        if setting:
            name, value = setting.group(1), _env_value(setting.group(2))
            if name in _MAIL_SETTINGS:
                result.skipped.append(
                    SkippedLine(
                        number,
                        line,
                        f"{name} is not supported: jobctl keeps every run's output "
                        "in its history (`jobctl runs`) instead of mailing it",
                    )
                )
                continue
            if name in _ZONE_SETTINGS:
                zone = _zone_setting(number, name, value)
                if name == "CRON_TZ":
                    continue
            if name == "SHELL":
                shell = value or None
                continue
            env[name] = value
            continue
        entry = _PRESET.fullmatch(raw) if line.startswith("@") else _ENTRY.fullmatch(raw)
        if entry is None:
            raise InvalidInput(
                f"line {number}: not a crontab line: expected five time fields (or an @preset) "
                f"and a command, NAME=value, or a # comment: "
                f"{line[:80] + '...' if len(line) > 80 else line!r}"
            )
        schedule, command = " ".join(entry.group(1).split()), entry.group(2).rstrip()
        if schedule.lower() == "@reboot":
            result.skipped.append(
                SkippedLine(
                    number,
                    line,
                    "@reboot is not supported: jobctl has no boot trigger (start "
                    "the command from a systemd unit, or `jobctl run NAME` from one)",
                )
            )
            continue
        unescaped = unescape_percent(command)
        if unescaped is None:
            result.skipped.append(
                SkippedLine(
                    number,
                    line,
                    "an unescaped % is not supported: cron turns it into a newline "
                    "and feeds the rest to the command's standard input; write \\% for a literal "
                    "%, or move the input into a script",
                )
            )
            continue
        result.entries.append(
            CrontabEntry(
                line=number,
                schedule=schedule,
                command=unescaped,
                description=description,
                timezone=zone,
                shell=shell,
                env=tuple(env.items()),
            )
        )
    return result


def _zone_setting(number: int, name: str, value: str) -> str | None:
    """CRON_TZ=/TZ= for the entries below; empty goes back to the default zone."""
    zone = value.removeprefix(":")  # POSIX allows TZ=:Area/City
    if not zone:
        return None
    try:
        return get_zone(zone).key
    except InvalidInput as exc:
        raise InvalidInput(f"line {number}: {name}: {exc}") from None


# ---------------------------------------------------------------------------- names


def name_stem(command: str) -> str:
    """A job name from a command: its program's basename, lowercased and sanitised.

    Leading `NAME=value` assignments and a leading `cd DIR &&` or `[ -x PROG ] &&` are
    passed over, so that `cd ~/site && ./deploy.sh --all` is called `deploy.sh`.
    """
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = command.split()
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    if words and words[0] in _PREAMBLES:
        separators = [index for index, word in enumerate(words) if word in ("&&", ";")]
        if separators and separators[0] + 1 < len(words):
            words = words[separators[0] + 1 :]
    program = words[0] if words else ""
    base = program.rstrip("/").rsplit("/", 1)[-1].lower()
    stem = _NOT_NAME.sub("-", base).lstrip("._-")
    return stem or "job"


def _validate_prefix(prefix: str) -> str:
    if prefix and (len(prefix) > MAX_NAME - 8 or not NAME_PATTERN.fullmatch(prefix + "x")):
        raise InvalidInput(
            f"invalid --prefix {prefix!r}: use up to {MAX_NAME - 8} characters from a-z, 0-9, "
            "'.', '_', '-', starting with a letter or digit"
        )
    return prefix


def unique_name(stem: str, prefix: str, taken: set[str]) -> str:
    """prefix + stem, or with -2, -3 ... when taken; cut to fit the 64-character limit."""
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        room = MAX_NAME - len(prefix) - len(suffix)
        name = prefix + stem[:room].rstrip("._-") + suffix
        if name not in taken and name not in RESERVED_NAMES:
            return name
        number += 1


# ---------------------------------------------------------------------------- importing


def _command(entry: CrontabEntry) -> tuple[str, bool]:
    """The command line and whether it runs through /bin/sh: cron runs the command with
    `$SHELL -c` (default /bin/sh)."""
    if (entry.shell or "") in _DEFAULT_SHELLS:
        return entry.command, True
    assert entry.shell is not None
    return f"{shlex.quote(entry.shell)} -c {shlex.quote(entry.command)}", False


def _reference_warnings(entries: Iterable[CrontabEntry]) -> list[str]:
    warnings = []
    for entry in entries:
        names = sorted(set(references(entry.command)))
        if names:
            shown = ", ".join("${" + name + "}" for name in names)
            warnings.append(
                f"line {entry.line}: jobctl expands {shown} itself when the job fires, from "
                "the daemon's environment or env file (not from the crontab's NAME=value "
                "lines); write $NAME to leave it to the shell"
            )
    return warnings


def plan_import(
    store: Store,
    crontab: Crontab,
    now: datetime,
    *,
    prefix: str = "",
    zone: str | None = None,
    home: str | None = None,
    on_progress: OnProgress = no_progress,
) -> list[ImportedJob]:
    """Build (and validate) a job per entry, named uniquely against the database."""
    prefix = _validate_prefix(prefix)
    default_zone = get_zone(zone).key if zone else None
    default_home = home if home is not None else os.path.expanduser("~")
    taken = set(store.job_names())
    planned = []
    checked = Tally("checking", len(crontab.entries), on_progress)
    for index, entry in enumerate(crontab.entries):
        name = unique_name(name_stem(entry.command), prefix, taken)
        command, shell = _command(entry)
        change = JobChange(
            name=name,
            command=command,
            shell=shell,
            cron=entry.schedule,
            timezone=entry.timezone or default_zone,
            description=entry.description,
            env=dict(entry.env),
            cwd=entry.home or default_home,  # cron runs it in $HOME
        )
        try:
            job = build_job(change, existing=None, now=now)
        except JobctlError as exc:
            raise InvalidInput(f"line {entry.line}: {exc}") from None
        taken.add(name)
        planned.append(ImportedJob(entry.line, job))
        checked.every_step(index)
    return planned


def import_crontab(
    store: Store,
    text: str,
    now: datetime,
    *,
    prefix: str = "",
    zone: str | None = None,
    home: str | None = None,
    dry_run: bool = False,
    on_progress: OnProgress = no_progress,
) -> CrontabImport:
    """Parse, plan and (unless dry_run) add every job in one transaction: all or nothing.
    `on_progress` hears of the entries checked, then of the jobs written."""
    if zone:
        try:
            get_zone(zone)
        except InvalidInput as exc:
            raise InvalidInput(f"invalid --tz: {exc}") from None
    crontab = parse_crontab(text)
    warnings = _reference_warnings(crontab.entries)

    def plan() -> list[ImportedJob]:
        return plan_import(
            store, crontab, now, prefix=prefix, zone=zone, home=home, on_progress=on_progress
        )

    if dry_run or not crontab.entries:
        planned = plan()
    else:
        with store.write():
            # Named inside the write lock, so a job added meanwhile cannot take a name.
            planned = plan()
            written = Tally("writing", len(planned), on_progress)
            for index, item in enumerate(planned):
                insert_job(store, item.job, now)
                written.every_step(index)
    return CrontabImport(planned, crontab.skipped, warnings)
