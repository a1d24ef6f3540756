"""The http action: one shared aiohttp session fires every request of the process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from jobctl import __version__
from jobctl.actions import (
    OUTPUT_CAP,
    Expansion,
    FireContext,
    Outcome,
    cap_output,
    fail_before_start,
)
from jobctl.errors import Failed
from jobctl.secrets import REDACTED, is_sensitive_header, redact_url
from jobctl.timeutil import format_duration, iso_z, utcnow

USER_AGENT = f"jobctl/{__version__}"
MAX_REDIRECTS = 10
_OWN_PREFIX = "x-jobctl-"
_READ_CHUNK = 16 * 1024


@lru_cache(maxsize=1024)
def _expect_ranges(expect: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for item in expect.replace(" ", "").lower().split(","):
        if not item:
            continue
        if item.endswith("xx"):
            low = int(item[0]) * 100
            ranges.append((low, low + 99))
        elif "-" in item:
            first, _, last = item.partition("-")
            ranges.append((int(first), int(last)))
        else:
            ranges.append((int(item), int(item)))
    return tuple(ranges)


def status_matches(expect: str, status: int) -> bool:
    """`2xx`, `200,204`, `200-299` and combinations like `2xx,404`."""
    return any(low <= status <= high for low, high in _expect_ranges(expect or "2xx"))


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
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                # jobs must not see each other's cookies through the shared session
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        self._loop = None


class HttpFirer(SessionOwner):
    """Fires http specs through one ClientSession (created lazily in the running loop)."""

    async def post_json(
        self,
        url_template: str,
        payload: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """POST a JSON document (an answer delivery or a notification); never raises.

        Returns what happened, for the run's record: redacted URL, status, ok, error.
        """
        expansion = Expansion(env)
        record: dict[str, Any] = {
            "url": redact_url(url_template),
            "status": None,
            "ok": False,
            "error": None,
        }
        try:
            url = expansion.url(url_template)
        except Failed as exc:
            record["error"] = str(exc)
            return record
        try:
            async with self._get_session().post(
                url,
                json=dict(payload),
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                record["status"] = response.status
                record["ok"] = 200 <= response.status < 300
                if not record["ok"]:
                    record["error"] = f"HTTP {response.status} {response.reason or ''}".strip()
        except TimeoutError:
            record["error"] = f"timed out after {format_duration(timeout)}"
        except Exception as exc:  # any failure to deliver is recorded, never raised
            record["error"] = expansion.redact(describe_error(exc))
        return record

    async def __aenter__(self) -> HttpFirer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def fire(self, spec: Mapping[str, Any], ctx: FireContext) -> Outcome:
        expansion = ctx.expansion
        body_template: str | None = spec.get("body")
        method = str(spec.get("method") or ("POST" if body_template is not None else "GET"))
        expect = str(spec.get("expect") or "2xx")
        headers: dict[str, str] = {}
        from_reference: set[str] = set()  # header names whose value came from ${NAME}
        try:
            url = expansion.url(str(spec["url"]))
            for name, template in (spec.get("headers") or {}).items():
                if name.lower().startswith(_OWN_PREFIX):
                    continue  # ours carry the run's identity; a job may not forge them
                value = expansion(str(template))
                if value != template:
                    from_reference.add(name)
                if "\r" in value or "\n" in value:
                    raise Failed(f"header {name}: its value contains a line break")
                headers[name] = value
            body = expansion(body_template) if body_template is not None else None
            if spec.get("forward_payload") and ctx.payload is not None:
                # The webhook's body goes on as sent: never expanded, it comes from outside.
                body = ctx.payload
                if ctx.payload_type:  # and so does its type (else aiohttp says octet-stream)
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                    from_reference = {k for k in from_reference if k.lower() != "content-type"}
                    headers["Content-Type"] = ctx.payload_type
        except Failed as exc:
            return fail_before_start(str(exc), utcnow(), _redacted_template(method, spec))
        if not any(name.lower() == "user-agent" for name in headers):
            headers["User-Agent"] = USER_AGENT
        headers["X-Jobctl-Job"] = ctx.job
        headers["X-Jobctl-Run"] = str(ctx.run_id)
        headers["X-Jobctl-Scheduled-For"] = _slot_text(ctx.scheduled_for)
        snapshot = _snapshot(method, url, headers, body, expansion, from_reference)

        session = self._get_session()
        started_at = utcnow()
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body.encode() if body is not None else None,
                timeout=aiohttp.ClientTimeout(total=ctx.timeout),
                allow_redirects=True,
                # aiohttp counts the redirect that trips the limit, so one more lets 10 through
                max_redirects=MAX_REDIRECTS + 1,
            ) as response:
                data, complete = await read_limited(response.content)
                status = response.status
                reason = response.reason or ""
                response_headers = response.headers
                final_url = _final_url(response)
        except TimeoutError:
            return Outcome(
                status="timed_out",
                started_at=started_at,
                finished_at=utcnow(),
                error=f"timed out after {format_duration(ctx.timeout)}",
                snapshot=snapshot,
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(
                status="failed",
                started_at=started_at,
                finished_at=utcnow(),
                error=expansion.redact(describe_error(exc)),
                snapshot=snapshot,
            )
        finished_at = utcnow()

        total: int | None = None
        if not complete and "Content-Encoding" not in response_headers:
            # Content-Length counts the encoded body; it is the size only when not compressed
            length = response_headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
        output = expansion.redact(cap_output(data, total, complete=complete))
        ok = status_matches(expect, status)
        error = None
        if not ok:
            error = expansion.redact(
                f"HTTP {status}{' ' + reason if reason else ''} (expected {expect})"
            )
        return Outcome(
            status="succeeded" if ok else "failed",
            started_at=started_at,
            finished_at=finished_at,
            http_status=status,
            output=output,
            error=error,
            snapshot=snapshot,
            details={
                "response_headers": _response_headers(response_headers, expansion),
                "final_url": (
                    snapshot["url"] if final_url == url else _redact_url(final_url, expansion)
                ),
            },
        )


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
    """One line naming the cause of a request that got no usable response."""
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"too many redirects (more than {MAX_REDIRECTS})"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate error for {exc.host}: {_reason(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error connecting to {exc.host}:{exc.port}: {_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {exc.host}: {_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a complete response"
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return f"not an http:// or https:// URL: {redact_url(str(exc.args[0]))}"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL {redact_url(str(exc.url))}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the response body could not be read: {_reason(exc)}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response: {exc.message or type(exc).__name__}"
    return f"request failed: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno and exc.errno > 0:  # getaddrinfo's are < 0
        return os.strerror(exc.errno)  # asyncio's strerror is "Connect call failed (...)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())  # one line, whatever the library put in it
    return text or type(exc).__name__


@lru_cache(maxsize=1024)
def _slot_text(slot: datetime) -> str:
    return iso_z(slot) or ""  # a burst of jobs shares one slot: format it once


@lru_cache(maxsize=1024)
def _sensitive(name: str) -> bool:
    return is_sensitive_header(name)


def _final_url(response: aiohttp.ClientResponse) -> str:
    """The URL after redirects, with the fragment the last Location gave (aiohttp drops it:
    left out, a secret that ran into it would be stored cut short, and so unmasked)."""
    if response.history:
        location = response.history[-1].headers.get("Location", "")
        _, hash_sign, fragment = location.partition("#")
        if hash_sign:
            return f"{response.url.with_fragment(None)}#{fragment}"
    return str(response.url)


def _redact_url(url: str, expansion: Expansion) -> str:
    url = expansion.redact(url)
    if "@" not in url and "?" not in url:  # nothing for redact_url to hide; skip its parsing
        return url
    return redact_url(url)


def _snapshot(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: str | None,
    expansion: Expansion,
    from_reference: set[str],
) -> dict[str, Any]:
    """What was sent, with every expanded secret and every sensitive header as ***."""
    shown_headers = {
        name: REDACTED if name in from_reference or _sensitive(name) else expansion.redact(value)
        for name, value in headers.items()
    }
    shown_body = None
    if body is not None:
        shown_body = cap_output(expansion.redact(body).encode())
    return {
        "method": method,
        "url": _redact_url(url, expansion),
        "headers": shown_headers,
        "body": shown_body,
    }


def _redacted_template(method: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot when nothing was sent: the spec as written, with literal secrets hidden."""
    headers = {
        name: REDACTED if _sensitive(name) else str(value)
        for name, value in (spec.get("headers") or {}).items()
    }
    body = spec.get("body")
    return {
        "method": method,
        "url": redact_url(str(spec.get("url", ""))),
        "headers": headers,
        "body": cap_output(body.encode()) if isinstance(body, str) else None,
    }


def _response_headers(headers: CIMultiDictProxy[str], expansion: Expansion) -> dict[str, str]:
    shown: dict[str, str] = {}
    for name, value in headers.items():
        value = REDACTED if _sensitive(name) else expansion.redact(value)
        shown[name] = f"{shown[name]}, {value}" if name in shown else value
    return shown


__all__ = ["MAX_REDIRECTS", "USER_AGENT", "HttpFirer", "describe_error", "status_matches"]
