"""A systemd unit for the daemon (`jobctl daemon --systemd-unit`): ExecStart quoted by
systemd's own rules, hardening, and PrivateTmp left out when it would hide a file."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from jobctl.paths import DbLocation, PostgresUrl

# Characters that need no quoting in an ExecStart word (after % and $ are doubled).
_UNIT_WORD_SAFE = re.compile(r"[A-Za-z0-9_@%$+=:,./-]+")
_UNIT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def systemd_word(word: str) -> str:
    """One ExecStart word by systemd's rules (systemd.service(5), "Command lines").

    `%` is a specifier and `$` an environment reference everywhere, quoted or not, so they
    are doubled; a word with anything but plain characters goes in double quotes, where
    systemd reads C-style backslash escapes.
    """
    word = word.replace("%", "%%").replace("$", "$$")
    if _UNIT_WORD_SAFE.fullmatch(word):
        return word
    quoted = "".join(
        _UNIT_ESCAPES.get(
            char, f"\\x{ord(char):02x}" if ord(char) < 0x20 or char == "\x7f" else char
        )
        for char in word
    )
    return f'"{quoted}"'


def jobctl_program() -> str:
    """The absolute path of the `jobctl` program running now (a unit needs one).

    The script this process was started as, else the one installed beside this Python
    (`python -m jobctl`), else the first on PATH.
    """
    started_as = Path(sys.argv[0])
    if started_as.name == "jobctl" and started_as.is_file():
        return str(started_as.absolute())
    beside = Path(sys.executable).parent / "jobctl"
    if beside.is_file():
        return str(beside.absolute())
    return str(Path(shutil.which("jobctl") or "jobctl").absolute())


TEMPORARY_DIRECTORIES = (Path("/tmp"), Path("/var/tmp"))


def paths_in_tmp(db_path: DbLocation, daemon_args: Sequence[str]) -> list[str]:
    """The database and the path arguments that live in /tmp or /var/tmp, which a unit's
    PrivateTmp=yes would hide from the service (it gets a /tmp of its own)."""
    found = []
    for word in [str(db_path), *daemon_args]:
        if not word.startswith("/"):
            continue
        path = Path(word)
        for candidate in (path, path.resolve()):
            if any(candidate.is_relative_to(tmp) for tmp in TEMPORARY_DIRECTORIES):
                found.append(word)
                break
    return found


def systemd_unit(db_path: DbLocation, daemon_args: Sequence[str], *, user: bool) -> str:
    """A ready `jobctl.service` (Type=notify, watchdog, restart on failure, hardening).

    `daemon_args` are the daemon's own options, given as they are to be passed on.
    PrivateTmp=yes is left out when the database or a file the daemon is given lives in
    /tmp or /var/tmp (paths_in_tmp): the service would see an empty /tmp of its own.
    """
    database = db_path.url if isinstance(db_path, PostgresUrl) else str(db_path)
    argv = [jobctl_program(), "daemon", "--db", database, *daemon_args]
    private_tmp = [] if paths_in_tmp(db_path, daemon_args) else ["PrivateTmp=yes"]
    lines = [
        "[Unit]",
        "Description=jobctl scheduler (HTTP, agent and command jobs)",
        "Documentation=man:jobctl(1)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={' '.join(systemd_word(word) for word in argv)}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=5s",
        "WatchdogSec=30s",
        "TimeoutStopSec=45s",
        "KillMode=mixed",
        "NoNewPrivileges=yes",
        *private_tmp,
        "ProtectSystem=full",
        "UMask=0077",
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
        "",
    ]
    return "\n".join(lines)
