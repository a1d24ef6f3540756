"""Secrets masked in the daemon's log lines (apart from jobctl.secrets, so that commands
that only redact a URL or a header do not import logging)."""

from __future__ import annotations

import logging

from jobctl.secrets import Redactor


class RedactingLogFilter(logging.Filter):
    """Masks secrets (every form, see Redactor) in log lines, their tracebacks included."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor:
            return True
        record.msg = self.redactor(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True
