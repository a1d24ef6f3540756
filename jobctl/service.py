"""Running the daemon as a service: systemd notify, journald logging, detaching, stopping.

The systemd notify protocol is a few datagrams on the AF_UNIX socket named by
$NOTIFY_SOCKET; no library is needed for it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobctl.errors import DaemonUnavailable, Failed, JobctlError
from jobctl.paths import lock_path, pid_path

log = logging.getLogger("jobctl.daemon")

# syslog priorities that journald reads from a `<N>` prefix on each line
_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd when $NOTIFY_SOCKET is set."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if watchdog_usec.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            # Ping at half the interval, as sd_watchdog_enabled(3) advises.
            self.watchdog_interval = int(watchdog_usec) / 1_000_000 / 2
        self._last_watchdog = 0.0

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, message: str) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:  # systemd went away: nothing to tell, nothing to break
            log.debug("systemd notify failed: %s", exc)

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self, now_monotonic: float) -> None:
        """Called from the loop itself, so a stuck loop stops the pings."""
        if self.watchdog_interval is None:
            return
        if now_monotonic - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now_monotonic
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def under_journald() -> bool:
    """True when stderr is the journal stream systemd gave us ($JOURNAL_STREAM = dev:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{info.st_dev}:{info.st_ino}"


class JournalFormatter(logging.Formatter):
    """`<6>message`: journald adds the time and reads the priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITIES.get(record.levelno, 6)
        return f"<{priority}>{super().format(record)}"


@dataclass
class LogConfig:
    level: str = "info"
    file: Path | None = None
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 5


def setup_logging(config: LogConfig) -> logging.Handler:
    """Log to the file (rotated by size) or to stderr; journald gets priorities, no times."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if config.file is not None:
        config.file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            config.file,
            maxBytes=config.max_bytes,
            backupCount=config.backups,
            encoding="utf-8",
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    elif under_journald():
        handler = logging.StreamHandler()
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, config.level.upper()))
    return handler


def reopen_log(handler: logging.Handler | None) -> None:
    """After logrotate moved the file: write to a new one at the configured path."""
    if isinstance(handler, logging.FileHandler):
        handler.acquire()
        try:
            if handler.stream:
                handler.stream.close()
            handler.stream = handler._open()
        finally:
            handler.release()


# ----------------------------------------------------------------------------- listening


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def cannot_listen(host: str, port: int, exc: OSError) -> Failed:
    # asyncio words its own strerror ("error while attempting to bind ..."); errno is plain
    reason = exc.strerror or str(exc)
    if exc.errno and not isinstance(exc, socket.gaierror):
        reason = os.strerror(exc.errno)
    reason = reason.lower()
    return Failed(f"cannot listen on {listen_address(host, port)}: {reason}")


def check_can_listen(host: str, port: int) -> None:
    """Fail now, with one line, when the listener could not bind HOST:PORT.

    Binds as asyncio's server does (SO_REUSEADDR, IPv6 sockets IPv6-only, every address
    the host name has) and lets go at once.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise cannot_listen(host, port, exc) from None
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise cannot_listen(host, port, exc) from None


# ----------------------------------------------------------------------------- detaching


def detach(
    db_path: Path,
    log_file: Path,
    pidfile: Path | None,
    start: Callable[[], int],
    timeout: float = 10.0,
) -> int | None:
    """Start the daemon in the background; its pid once its heartbeat shows it is up.

    None when it did not come up in time. The caller has taken the single-instance lock;
    the forked daemon inherits it.
    """
    import daemon as python_daemon

    launched = time.time()
    pid_file = pidfile or pid_path(db_path)
    log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    child = os.fork()
    if child:
        return _wait_for_heartbeat(db_path, launched, timeout, child)
    code = 1
    try:
        with open(log_file, "a", encoding="utf-8") as stream:
            os.chmod(log_file, 0o600)
            context = python_daemon.DaemonContext(
                detach_process=True,
                umask=0o077,
                working_directory="/",
                files_preserve=_preserved_fds(db_path),
                stdout=stream,
                stderr=stream,
                signal_map={},  # the loop installs its own SIGTERM/SIGINT/SIGHUP handlers
            )
            with context:
                _write_pidfile(pid_file)
                try:
                    code = start()
                except JobctlError as exc:  # the launcher shows the log's last lines
                    log.error("%s", exc)
                    code = exc.exit_code
                finally:
                    pid_file.unlink(missing_ok=True)
    finally:
        os._exit(code)


def _preserved_fds(db_path: Path) -> list[int]:
    """Keep the lock's file descriptor open through the daemonizing close-all."""
    lock = str(lock_path(db_path))
    kept = []
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        try:
            if os.readlink(f"/proc/self/fd/{name}") == lock:
                kept.append(int(name))
        except OSError:
            continue
    return kept


def _write_pidfile(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")


def _wait_for_heartbeat(db_path: Path, launched: float, timeout: float, child: int) -> int | None:
    from jobctl.store import peek_daemon_row

    os.waitpid(child, 0)  # the intermediate process exits as soon as it has detached
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = peek_daemon_row(db_path, timeout=1)
        if row and not row.stopped_at and row.started_at.timestamp() >= launched - 1:
            return row.pid
        time.sleep(0.1)
    return None


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=count)]
    except OSError:
        return []


# ------------------------------------------------------------------------------ stopping


def holder_pid(db_path: Path) -> int | None:
    """The pid written in the lock file by the daemon holding it."""
    try:
        text = lock_path(db_path).read_text()
    except OSError:
        return None
    parts = text.split()
    return int(parts[1]) if len(parts) >= 2 and parts[0] == "pid" and parts[1].isdigit() else None


def stop_daemon(db_path: Path, timeout: float) -> int | None:
    """SIGTERM the daemon holding the database and wait until it lets go; its pid, or None."""
    from jobctl.liveness import InstanceLock

    if not InstanceLock.is_held(db_path):
        return None
    pid = holder_pid(db_path)
    if pid is None:
        raise DaemonUnavailable("a daemon holds the database but its pid is unknown")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + timeout
    while InstanceLock.is_held(db_path):
        if time.monotonic() > deadline:
            raise Failed(f"the daemon (pid {pid}) did not stop within {timeout:.0f}s")
        time.sleep(0.05)
    return pid


# ------------------------------------------------------------------------------- systemd


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


def paths_in_tmp(db_path: Path, daemon_args: Sequence[str]) -> list[str]:
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


def systemd_unit(db_path: Path, daemon_args: Sequence[str], *, user: bool) -> str:
    """A ready `jobctl.service` (Type=notify, watchdog, restart on failure, hardening).

    `daemon_args` are the daemon's own options, given as they are to be passed on.
    PrivateTmp=yes is left out when the database or a file the daemon is given lives in
    /tmp or /var/tmp (paths_in_tmp): the service would see an empty /tmp of its own.
    """
    argv = [jobctl_program(), "daemon", "--db", str(db_path), *daemon_args]
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


def follow_log(path: Path, poll: float = 0.25) -> Iterator[str]:
    """New lines of a log file as they come, across rotation (the path gets a new file)."""
    handle = open(path, encoding="utf-8", errors="replace")
    handle.seek(0, os.SEEK_END)
    inode = os.fstat(handle.fileno()).st_ino
    pending = ""
    try:
        while True:
            chunk = handle.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield pending.rstrip("\n")
                    pending = ""
                continue
            time.sleep(poll)
            try:
                if os.stat(path).st_ino != inode:  # rotated: read the new file from the top
                    handle.close()
                    handle = open(path, encoding="utf-8", errors="replace")
                    inode = os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                continue
    finally:
        handle.close()
