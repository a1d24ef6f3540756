"""The listener's log for requests too malformed to reach a handler (a bad request line, a
Content-Length with Transfer-Encoding, too many or too long headers, TLS on the HTTP port).

aiohttp logs each of them as an ERROR with a full traceback: anyone who can reach the port
could fill the disk with them. Here each costs one short line, and a flood a few lines a
minute. Any other error (a bug in a handler) keeps its traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

LINES_PER_MINUTE = 10
_REASON_LENGTH = 120


class BadRequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Given to aiohttp as its request handlers' `logger`."""

    def __init__(
        self, logger: logging.Logger, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(logger, {})
        self._clock = clock
        self._window_start = -60.0
        self._logged = 0
        self._dropped = 0

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            remote = args[0] if args else "?"
            self._bad_request(min(level, logging.WARNING), str(remote), exc)
        else:
            self.logger.log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> Any:
        return msg, kwargs

    def _bad_request(self, level: int, remote: str, exc: HttpProcessingError) -> None:
        now = self._clock()
        if now - self._window_start >= 60:
            if self._dropped:
                self.logger.warning(
                    "%d more bad requests in the last minute were not logged", self._dropped
                )
            self._window_start, self._logged, self._dropped = now, 0, 0
        if self._logged >= LINES_PER_MINUTE:
            if not self._dropped:
                self.logger.warning(
                    "more than %d bad requests a minute: the rest of this minute's are not logged",
                    LINES_PER_MINUTE,
                )
            self._dropped += 1
            return
        self._logged += 1
        self.logger.log(level, "bad request from %s: %s", remote, reason(exc))


def reason(exc: HttpProcessingError) -> str:
    """aiohttp's message cut to its first line (the rest quotes the request)."""
    text = str(exc.message or type(exc).__name__).strip().splitlines()[0].rstrip(":")
    text = text.encode("ascii", "backslashreplace").decode()
    if len(text) > _REASON_LENGTH:
        text = text[: _REASON_LENGTH - 3] + "..."
    return f"{text} ({exc.code})" if exc.code else text
