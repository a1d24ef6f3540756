"""Starting the daemon in the background and stopping it.

Before detaching, `check_can_listen` fails at once when the listener's address is taken;
`detach` forks a daemonized child and waits for its heartbeat; `stop_daemon` signals the
process holding the database's lock and waits until it lets go.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from jobctl.errors import DaemonUnavailable, Failed, JobctlError
from jobctl.paths import DbLocation, PostgresUrl, lock_path, pid_path

log = logging.getLogger("jobctl.daemon")


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
    db_path: DbLocation,
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


def _preserved_fds(db_path: DbLocation) -> list[int]:
    """Keep the lock's file descriptor open through the daemonizing close-all (there is no
    lock on PostgreSQL)."""
    if not isinstance(db_path, Path):
        return []
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


def _wait_for_heartbeat(
    db_path: DbLocation, launched: float, timeout: float, child: int
) -> int | None:
    from jobctl.store import peek_daemon_row

    os.waitpid(child, 0)  # the intermediate process exits as soon as it has detached
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = peek_daemon_row(db_path, timeout=1)
        if row and not row.stopped_at and row.started_at.timestamp() >= launched - 1:
            return row.pid
        time.sleep(0.1)
    return None


# ------------------------------------------------------------------------------ stopping


def holder_pid(db_path: Path) -> int | None:
    """The pid written in the lock file by the daemon holding it."""
    try:
        text = lock_path(db_path).read_text()
    except OSError:
        return None
    parts = text.split()
    return int(parts[1]) if len(parts) >= 2 and parts[0] == "pid" and parts[1].isdigit() else None


def stop_daemon(db_path: DbLocation, timeout: float) -> int | None:
    """SIGTERM the daemon holding the database and wait until it lets go; its pid, or None."""
    from jobctl.liveness import InstanceLock

    if isinstance(db_path, PostgresUrl):
        return _stop_daemon_here(db_path, timeout)
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


def _stop_daemon_here(location: PostgresUrl, timeout: float) -> int | None:
    """On PostgreSQL (no lock file): SIGTERM the daemon of the heartbeat row when it runs on
    this machine, and wait until its process ends; its pid, or None."""
    from jobctl import runs
    from jobctl.store import peek_daemon_row

    row = peek_daemon_row(location, timeout=5.0)
    if row is None or row.stopped_at or row.host != runs.HOST:
        return None
    if not runs.process_exists(row.pid, since=row.started_at):
        return None
    try:
        os.kill(row.pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + timeout
    while runs.process_exists(row.pid, since=row.started_at):
        if time.monotonic() > deadline:
            raise Failed(f"the daemon (pid {row.pid}) did not stop within {timeout:.0f}s")
        time.sleep(0.05)
    return row.pid
