"""Telling systemd how the daemon is doing: READY, STATUS, WATCHDOG and STOPPING.

The systemd notify protocol is a few datagrams on the AF_UNIX socket named by
$NOTIFY_SOCKET; no library is needed for it.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("jobctl.daemon")


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
