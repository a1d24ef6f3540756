"""The http action: one shared aiohttp session fires every request of the process."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import aiohttp
from multidict import CIMultiDictProxy

from jobctl.actions import (
    OUTPUT_CAP,
    Expansion,
    FireContext,
    Outcome,
    cap_output,
    fail_before_start,
    http_client,
    interrupted,
)
from jobctl.actions.http_body import CHECK_CAP, decode, read_counted, spec_checks
from jobctl.actions.http_client import HttpClient
from jobctl.actions.http_client import Response as Got
from jobctl.actions.http_timings import CURRENT, Timer, TracedSession
from jobctl.actions.request import (
    MAX_REDIRECTS,
    USER_AGENT,
    RequestHeaders,
    SessionOwner,
    add_run_headers,
    describe_error,
    is_sensitive,
    shown_template_headers,
    shown_url,
)
from jobctl.errors import Failed
from jobctl.http_checks import Checks, Response, failed_check
from jobctl.models import HttpSpec
from jobctl.secrets import REDACTED, redact_url
from jobctl.timeutil import format_duration, utcnow


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


@lru_cache(maxsize=1024)
def status_matches(expect: str, status: int) -> bool:
    """`2xx`, `200,204`, `200-299` and combinations like `2xx,404`."""
    return any(low <= status <= high for low, high in _expect_ranges(expect or "2xx"))


_SPECS_KEPT = 4096  # specs whose _Prepared is kept (as many as the store keeps specs)


@dataclass(frozen=True, slots=True)
class _Fixed:
    """The request and snapshot of a spec with no ${NAME} anywhere, but the run's own
    X-Jobctl-* headers: with nothing to expand, they depend on the run's secrets alone (the
    env file's values), and serve every run with the same."""

    secrets: frozenset[str]  # what they were masked with (the run's Redactor's values)
    headers: dict[str, str]  # copied at each fire
    shown_headers: dict[str, str]  # copied at each fire
    shown_url: str
    shown_body: str | None
    data: bytes | None

    @classmethod
    def of(cls, spec: HttpSpec, expansion: Expansion) -> _Fixed:
        """Raises Failed (a header's value with a line break)."""
        headers = RequestHeaders.expand(spec.headers, expansion)
        headers.add_user_agent()
        body = spec.body
        return cls(
            secrets=expansion.redactor.values,
            headers=headers.values,
            shown_headers=headers.shown(expansion),
            shown_url=shown_url(spec.url, expansion),
            shown_body=cap_output(expansion.redact(body).encode()) if body is not None else None,
            data=body.encode() if body is not None else None,
        )


@dataclass(slots=True)
class _Prepared:
    """What every fire of one spec shares."""

    method: str
    expect: str
    limit: int  # redirects followed
    keep: int  # bytes of the body kept
    checks: Checks | None  # None: the status is all there is to check
    # None: the spec refers to ${NAME} (or a header fails: each fire says why); else the
    # one for the latest runs' secrets (made again for a run whose secrets differ)
    fixed: _Fixed | None

    @classmethod
    def of(cls, spec: HttpSpec) -> _Prepared:
        checks = spec_checks(spec)
        return cls(
            method=spec.method or ("POST" if spec.body is not None else "GET"),
            expect=spec.expect or "2xx",
            limit=MAX_REDIRECTS if spec.max_redirects is None else spec.max_redirects,
            keep=CHECK_CAP if checks.reads_body else OUTPUT_CAP,
            checks=checks if checks else None,
            fixed=_fixed_if_plain(spec),
        )


def _fixed_if_plain(spec: HttpSpec) -> _Fixed | None:
    """The spec's _Fixed for runs with no secret, None if it refers to ${NAME} or fails."""
    texts = [spec.url, *map(str, spec.headers.values())]
    if spec.body is not None:
        texts.append(spec.body)
    if any("${" in text for text in texts):
        return None
    try:
        return _Fixed.of(spec, Expansion({}))
    except Failed:
        return None


class HttpFirer(SessionOwner):
    """Fires http specs through one HttpClient (http_client, made lazily in the running loop).

    The requests of jobs with `--timings` go through an aiohttp session made with its tracing
    hooks (http_timings). The aiohttp session of SessionOwner sends `post_json`'s documents.
    """

    def __init__(self, max_connections: int = 256) -> None:
        super().__init__(max_connections)
        self._traced = TracedSession(max_connections)
        self._client: HttpClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._specs: dict[int, tuple[HttpSpec, _Prepared]] = {}

    def _get_client(self) -> HttpClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # its connections belong to the loop they were made in (see _get_session)
            self._client = HttpClient(self.max_connections)
            self._client_loop = loop
        return self._client

    async def close(self) -> None:
        await super().close()
        await self._traced.close()
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = self._client_loop = None

    async def _traced_request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        timeout: float,
        limit: int,
        keep: int,
        timer: Timer,
    ) -> Got:
        """The request through the session with aiohttp's tracing hooks (`--timings`)."""
        timed = CURRENT.set(timer)
        try:
            return await send_with_aiohttp(
                self._traced.session(), method, url, headers, data,
                timeout=timeout, max_redirects=limit, keep=keep, timer=timer,
            )  # fmt: skip
        finally:
            CURRENT.reset(timed)

    async def post_json(
        self,
        url_template: str,
        payload: Mapping[str, object],
        env: Mapping[str, str],
        *,
        timeout: float = 10.0,
    ) -> dict[str, object]:
        """POST a JSON document (an answer delivery or a notification); never raises.

        Returns what happened, for the run's record: redacted URL, status, ok, error.
        """
        expansion = Expansion(env)
        record: dict[str, object] = {
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

    def _prepared(self, spec: HttpSpec) -> _Prepared:
        """What every fire of `spec` shares, made at its first fire (specs are frozen; the
        store hands the claims of a job, and of jobs with the same spec, one object)."""
        entry = self._specs.get(id(spec))
        if entry is not None and entry[0] is spec:
            return entry[1]
        prepared = _Prepared.of(spec)
        if len(self._specs) >= _SPECS_KEPT:
            self._specs.clear()
        self._specs[id(spec)] = (spec, prepared)  # the spec held: its id is not reused
        return prepared

    async def fire(self, spec: HttpSpec, ctx: FireContext) -> Outcome:
        expansion = ctx.expansion
        prepared = self._prepared(spec)
        method, expect, limit = prepared.method, prepared.expect, prepared.limit
        fixed = prepared.fixed
        if fixed is not None and not (spec.forward_payload and ctx.payload is not None):
            secrets = expansion.redactor.values
            if fixed.secrets != secrets:  # another env file (the daemon re-read it)
                fixed = prepared.fixed = _Fixed.of(spec, expansion)
            url, data = spec.url, fixed.data
            sent = fixed.headers.copy()
            add_run_headers(sent, ctx)
            shown = fixed.shown_headers.copy()
            add_run_headers(shown, ctx, expansion.redact if secrets else None)
            snapshot: dict[str, object] = {
                "method": method,
                "url": fixed.shown_url,
                "headers": shown,
                "body": fixed.shown_body,
            }
        else:
            try:
                url = expansion.url(spec.url)
                headers = RequestHeaders.expand(spec.headers, expansion)
                body = expansion(spec.body) if spec.body is not None else None
                if spec.forward_payload and ctx.payload is not None:
                    # The webhook's body goes on as sent: never expanded, it comes from outside.
                    body = ctx.payload
                    if ctx.payload_type:  # and its type (else aiohttp says octet-stream)
                        headers.replace("Content-Type", ctx.payload_type)
            except Failed as exc:
                return fail_before_start(str(exc), utcnow(), _redacted_template(method, spec))
            headers.add_own(ctx)
            snapshot = _snapshot(method, url, headers, body, expansion)
            sent = headers.values
            data = body.encode() if body is not None else None
        checks, keep = prepared.checks, prepared.keep
        timer = Timer(traced=bool(spec.timings))
        started_at = utcnow()
        try:
            if spec.timings:
                response = await self._traced_request(
                    method, url, sent, data, ctx.timeout, limit, keep, timer
                )
            else:
                response = await self._get_client().request(
                    method, url, sent, data, timeout=ctx.timeout,
                    max_redirects=limit, keep=keep,
                )  # fmt: skip
                timer.headers = response.headers_at
                timer.finish()
        except asyncio.CancelledError as exc:
            raise interrupted(started_at, snapshot=snapshot) from exc
        except TimeoutError:
            return Outcome(
                status="timed_out",
                started_at=started_at,
                finished_at=utcnow(),
                error=f"timed out after {format_duration(ctx.timeout)}",
                snapshot=snapshot,
                details={"timings": timer.result()},
            )
        except (aiohttp.ClientError, http_client.ClientError, OSError, ValueError) as exc:
            if isinstance(exc, aiohttp.TooManyRedirects | http_client.TooManyRedirects):
                message = f"too many redirects (more than {limit})"
            else:
                message = describe_error(exc)
            return Outcome(
                status="failed",
                started_at=started_at,
                finished_at=utcnow(),
                error=expansion.redact(message),
                snapshot=snapshot,
                details={"timings": timer.result()},
            )
        finished_at = utcnow()

        status, reason, response_headers = response.status, response.reason, response.headers
        output = expansion.redact(cap_output(response.body[: OUTPUT_CAP + 1], response.size))
        final_url = _final_url(response)
        error = None
        if not status_matches(expect, status):
            error = f"HTTP {status}{' ' + reason if reason else ''} (expected {expect})"
            if limit == 0 and 300 <= status < 400 and "Location" in response_headers:
                error = f"HTTP {status}: a redirect, refused (--max-redirects 0)"
        elif checks is not None:
            seen = Response(
                decode(response.body, response.charset), response_headers, timer.seconds()
            )
            error = failed_check(checks, seen)
        return Outcome(
            status="succeeded" if error is None else "failed",
            started_at=started_at,
            finished_at=finished_at,
            http_status=status,
            output=output,
            error=None if error is None else expansion.redact(error),
            snapshot=snapshot,
            details={
                "response_headers": _response_headers(response_headers, expansion),
                "final_url": (
                    snapshot["url"] if final_url == url else shown_url(final_url, expansion)
                ),
                "redirects": response.redirects,
                "body_size": response.size,
                "timings": timer.result(),
            },
        )


async def send_with_aiohttp(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    data: bytes | None,
    *,
    timeout: float,
    max_redirects: int,
    keep: int,
    timer: Timer,
) -> Got:
    """What HttpClient.request does, through an aiohttp session (`timer` told its moments)."""
    async with session.request(
        method,
        url,
        headers=headers,
        data=data,
        timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=max_redirects > 0,
        # aiohttp counts the redirect that trips the limit, so one more lets N through
        max_redirects=max_redirects + 1,
        trace_request_ctx=timer,
    ) as response:
        timer.response_started()
        body, size = await read_counted(response.content, keep)
        timer.finish()
        timer.secure = response.url.scheme == "https"
        history = response.history
        return Got(
            status=response.status,
            reason=response.reason or "",
            headers=response.headers,
            url=response.url,
            body=body,
            size=size,
            redirects=len(history),
            location=history[-1].headers.get("Location") if history else None,
            headers_at=timer.headers or 0.0,
        )


def _final_url(response: Got) -> str:
    """The URL after redirects, with the fragment the last Location gave (the response's URL
    has none: left out, a secret that ran into it would be stored cut short, and so
    unmasked)."""
    if response.location:
        _, hash_sign, fragment = response.location.partition("#")
        if hash_sign:
            return f"{response.url.with_fragment(None)}#{fragment}"
    return str(response.url)


def _snapshot(
    method: str,
    url: str,
    headers: RequestHeaders,
    body: str | None,
    expansion: Expansion,
) -> dict[str, object]:
    """What was sent, with every expanded secret and every sensitive header as ***."""
    shown_body = None
    if body is not None:
        shown_body = cap_output(expansion.redact(body).encode())
    return {
        "method": method,
        "url": shown_url(url, expansion),
        "headers": headers.shown(expansion),
        "body": shown_body,
    }


def _redacted_template(method: str, spec: HttpSpec) -> dict[str, object]:
    """A snapshot when nothing was sent: the spec as written, with literal secrets hidden."""
    body = spec.body
    return {
        "method": method,
        "url": redact_url(spec.url),
        "headers": shown_template_headers(spec.headers),
        "body": cap_output(body.encode()) if isinstance(body, str) else None,
    }


def _response_headers(headers: CIMultiDictProxy[str], expansion: Expansion) -> dict[str, str]:
    shown: dict[str, str] = {}
    redact = None if expansion.none_in(headers.values()) else expansion.redact
    for name, value in headers.items():
        if is_sensitive(name):
            value = REDACTED
        elif redact is not None:
            value = redact(value)
        shown[name] = f"{shown[name]}, {value}" if name in shown else value
    return shown


__all__ = ["HttpFirer", "send_with_aiohttp", "status_matches"]
