"""What HTTP jobs and HTTP agents share when they send a request.

The configured headers with `${NAME}` expanded (`RequestHeaders`), jobctl's own User-Agent and
X-Jobctl-* headers, the redacted picture of the headers and URL for a run's snapshot, one
aiohttp session per firer (`SessionOwner`), a capped read of the response and a one-line
description of a request that got no usable response.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache

import aiohttp

from jobctl import __version__
from jobctl.actions import OUTPUT_CAP, Expansion, FireContext, http_client
from jobctl.errors import Failed
from jobctl.secrets import REDACTED, is_sensitive_header, redact_url
from jobctl.timeutil import iso_z

USER_AGENT = f"jobctl/{__version__}"
MAX_REDIRECTS = 10
_OWN_PREFIX = "x-jobctl-"
_READ_CHUNK = 16 * 1024


class RequestHeaders:
    """The headers a request sends, remembering which values came from `${NAME}`."""

    __slots__ = ("from_reference", "values")

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.from_reference: set[str] = set()  # names whose value came from ${NAME}

    @classmethod
    def expand(cls, templates: Mapping[str, object], expansion: Expansion) -> RequestHeaders:
        """The configured headers, expanded; raises Failed (an undefined name, a line break).

        X-Jobctl-* headers are dropped: ours carry the run's identity, and a job or an agent
        may not forge them.
        """
        headers = cls()
        for name, template in templates.items():
            if name.lower().startswith(_OWN_PREFIX):
                continue
            value = expansion(str(template))
            if value != template:
                headers.from_reference.add(name)
            if "\r" in value or "\n" in value:
                raise Failed(f"header {name}: its value contains a line break")
            headers.values[name] = value
        return headers

    def has(self, name: str) -> bool:
        lowered = name.lower()
        return any(key.lower() == lowered for key in self.values)

    def replace(self, name: str, value: str) -> None:
        """Set `name`, dropping a configured header that differs only in case (sent twice
        else)."""
        lowered = name.lower()
        for key in [key for key in self.values if key.lower() == lowered]:
            del self.values[key]
            self.from_reference.discard(key)
        self.values[name] = value

    def add_own(self, ctx: FireContext) -> None:
        """jobctl's User-Agent (unless one is configured) and the run's X-Jobctl-* headers."""
        self.add_user_agent()
        add_run_headers(self.values, ctx)

    def add_user_agent(self) -> None:
        """jobctl's User-Agent, unless one is configured."""
        if not self.has("User-Agent"):
            self.values["User-Agent"] = USER_AGENT

    def shown(self, expansion: Expansion) -> dict[str, str]:
        """For the snapshot: every expanded secret and every sensitive header as ***."""
        redact = unchanged if expansion.none_in(self.values.values()) else expansion.redact
        return {
            name: REDACTED if name in self.from_reference or is_sensitive(name) else redact(value)
            for name, value in self.values.items()
        }


def add_run_headers(
    values: dict[str, str], ctx: FireContext, redact: Callable[[str], str] | None = None
) -> None:
    """The run's X-Jobctl-* headers after the others; `redact`: as a snapshot shows them
    (none is a sensitive header)."""
    job, run, slot = ctx.job, str(ctx.run_id), _slot_text(ctx.scheduled_for)
    if redact is not None:
        job, run, slot = redact(job), redact(run), redact(slot)
    values["X-Jobctl-Job"] = job
    values["X-Jobctl-Run"] = run
    values["X-Jobctl-Scheduled-For"] = slot


def unchanged(text: str) -> str:
    return text


def shown_template_headers(templates: Mapping[str, object]) -> dict[str, str]:
    """For the snapshot of a request never sent: the headers as written, sensitive ones ***."""
    return {
        name: REDACTED if is_sensitive(name) else str(value) for name, value in templates.items()
    }


def shown_url(url: str, expansion: Expansion) -> str:
    """A URL as the snapshot shows it: expanded secrets, passwords and credential-like query
    parameters hidden."""
    url = expansion.redact(url)
    if "@" not in url and "?" not in url:  # nothing for redact_url to hide; skip its parsing
        return url
    return _redacted_url(url)


class SessionOwner:
    """One aiohttp ClientSession, made lazily in the running loop, for a firer's requests."""

    def __init__(self, max_connections: int = 256) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # a session belongs to the loop it was made in; a new loop (another
            # asyncio.run) needs its own, and the old one died with its loop
            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=self._connector(),
                # jobs must not see each other's cookies through the shared session
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
                trace_configs=self._trace_configs() or None,
            )
        return self._session

    def _connector(self) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(limit=self.max_connections)

    def _trace_configs(self) -> list[aiohttp.TraceConfig]:
        """The tracing hooks a firer wants on its session (none here)."""
        return []

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        self._loop = None


async def read_limited(
    content: aiohttp.StreamReader, limit: int = OUTPUT_CAP
) -> tuple[bytes, bool]:
    """At most `limit` + 1 bytes (one more tells that there was more); True if all read."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if content.at_eof():  # saves an await for the usual small body
            return b"".join(chunks), True
    return b"".join(chunks), content.at_eof()


def describe_error(exc: BaseException) -> str:
    """One line naming the cause of a request that got no usable response (from http_client,
    or from aiohttp: its errors are worded as their http_client counterparts)."""
    if isinstance(exc, aiohttp.ClientError):
        exc = _as_client_error(exc)
    if isinstance(exc, http_client.TooManyRedirects):
        return f"too many redirects (more than {MAX_REDIRECTS})"
    if isinstance(exc, http_client.CertificateError):
        return f"TLS certificate error for {exc.host}: {_reason(exc.os_error)}"
    if isinstance(exc, http_client.TlsError):
        return f"TLS error connecting to {exc.host}:{exc.port}: {_reason(exc.os_error)}"
    if isinstance(exc, http_client.DnsError):
        return f"cannot resolve host {exc.host}: {_reason(exc.os_error)}"
    if isinstance(exc, http_client.ConnectError):
        return f"cannot connect to {exc.host}:{exc.port}: {_reason(exc.os_error)}"
    if isinstance(exc, http_client.ServerDisconnected):
        return "the server closed the connection without a complete response"
    if isinstance(exc, http_client.NotHttpUrl):
        return f"not an http:// or https:// URL: {redact_url(exc.url)}"
    if isinstance(exc, http_client.InvalidUrl):
        return f"invalid URL {redact_url(exc.url)}"
    if isinstance(exc, http_client.BodyError):
        return f"the response body could not be read: {_reason(exc)}"
    if isinstance(exc, http_client.BadResponse):
        return f"bad response: {' '.join(exc.message.split())}"
    return f"request failed: {_reason(exc)}"


def _as_client_error(exc: aiohttp.ClientError) -> BaseException:
    """The http_client error that stands for one of aiohttp's (itself when none does)."""
    if isinstance(exc, aiohttp.TooManyRedirects):
        return http_client.TooManyRedirects()
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return http_client.CertificateError(exc.host, exc.port, exc.certificate_error)
    if isinstance(exc, aiohttp.ClientSSLError):
        return http_client.TlsError(exc.host, exc.port, exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return http_client.DnsError(exc.host, exc.port, exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return http_client.ConnectError(exc.host, exc.port, exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return http_client.ServerDisconnected()
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return http_client.NotHttpUrl(str(exc.args[0]))
    if isinstance(exc, aiohttp.InvalidURL):
        return http_client.InvalidUrl(str(exc.url))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return http_client.BodyError(str(exc))
    if isinstance(exc, aiohttp.ClientResponseError):
        return http_client.BadResponse(exc.message or type(exc).__name__)
    return exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return exc.verify_message  # its errno is OpenSSL's code, not an OS error
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.errno and exc.errno > 0:  # getaddrinfo's are < 0
        return os.strerror(exc.errno)  # asyncio's strerror is "Connect call failed (...)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())  # one line, whatever the library put in it
    return text or type(exc).__name__


@lru_cache(maxsize=1024)
def _redacted_url(url: str) -> str:
    return redact_url(url)  # a job's URL comes back at each fire: parse it once


@lru_cache(maxsize=1024)
def _slot_text(slot: datetime) -> str:
    return iso_z(slot) or ""  # a burst of jobs shares one slot: format it once


@lru_cache(maxsize=1024)
def is_sensitive(name: str) -> bool:
    """A header whose value is a credential (secrets.is_sensitive_header, remembered)."""
    return is_sensitive_header(name)


__all__ = [
    "MAX_REDIRECTS",
    "USER_AGENT",
    "RequestHeaders",
    "SessionOwner",
    "add_run_headers",
    "describe_error",
    "is_sensitive",
    "read_limited",
    "shown_template_headers",
    "shown_url",
]
