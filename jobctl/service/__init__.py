"""Running the daemon as a service, one concern per module.

- `notify`: the systemd notify protocol (ready, status, watchdog, stopping);
- `logs`: where the daemon logs (a rotated file, journald, stderr) and reading the log back;
- `lifecycle`: the listen check, detaching into the background, stopping a running daemon;
- `unit`: the systemd unit file `jobctl daemon --systemd-unit` prints.

The names are imported from here: `from jobctl.service import stop_daemon`.
"""

from __future__ import annotations

from jobctl.service.lifecycle import (
    cannot_listen,
    check_can_listen,
    detach,
    holder_pid,
    listen_address,
    stop_daemon,
)
from jobctl.service.logs import (
    JournalFormatter,
    LogConfig,
    follow_log,
    reopen_log,
    setup_logging,
    tail_lines,
    under_journald,
)
from jobctl.service.notify import SystemdNotifier
from jobctl.service.unit import (
    TEMPORARY_DIRECTORIES,
    jobctl_program,
    paths_in_tmp,
    systemd_unit,
    systemd_word,
)

__all__ = [
    "TEMPORARY_DIRECTORIES",
    "JournalFormatter",
    "LogConfig",
    "SystemdNotifier",
    "cannot_listen",
    "check_can_listen",
    "detach",
    "follow_log",
    "holder_pid",
    "jobctl_program",
    "listen_address",
    "paths_in_tmp",
    "reopen_log",
    "setup_logging",
    "stop_daemon",
    "systemd_unit",
    "systemd_word",
    "tail_lines",
    "under_journald",
]
