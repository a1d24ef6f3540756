"""The daemon's log: where it goes (a rotated file, journald or stderr), reopening it after
logrotate, and reading it back (`jobctl daemon logs`: the last lines, then follow)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# syslog priorities that journald reads from a `<N>` prefix on each line
_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


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


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=count)]
    except OSError:
        return []


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
