"""Where an HTTP run's time went, from aiohttp's tracing hooks.

One `Timer` per request. Every run gets its time to the first byte (the response's headers)
and its total, which cost nothing. A job with `--timings` is sent through a session made with
`trace_config()` and gets the phases of its last hop, which add up to the total: redirects
(the earlier hops), dns, connect (waiting for a pooled connection and the TCP connect), tls
(the handshake, https only), send (the request written), wait (until the first byte) and
receive (the body). aiohttp has no hook between the TCP connect and the TLS handshake: the
timed session's connector notes the moment it makes the connection's protocol, which asyncio
does once the socket is connected and before the handshake. The hooks cost about a fifth more CPU per request (bench/http_fire_cost.py
--timings-cost), hence only when asked.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from jobctl.actions.request import SessionOwner


class Timer:
    """The moments of one request, in perf_counter seconds."""

    __slots__ = (
        "connected",
        "dns",
        "dns_start",
        "done",
        "headers",
        "hop",
        "secure",
        "sent",
        "start",
        "tcp_done",
        "traced",
    )

    def __init__(self, *, traced: bool = False) -> None:
        self.traced = traced  # the hooks run: every phase is known
        self.start = perf_counter()
        self.hop = self.start  # the start of the last hop (after the last redirect)
        self.dns = 0.0
        self.dns_start = 0.0
        self.connected: float | None = None  # a new connection, made in the last hop
        self.tcp_done: float | None = None  # its socket connected (TimedConnector)
        self.secure = False  # the last hop was https
        self.sent: float | None = None
        self.headers: float | None = None
        self.done: float | None = None

    def response_started(self) -> None:
        """The response's headers are in (the hook, when traced, saw it a little earlier)."""
        if self.headers is None:
            self.headers = perf_counter()

    def finish(self) -> None:
        self.done = perf_counter()

    def seconds(self) -> float:
        return (self.done if self.done is not None else perf_counter()) - self.start

    def result(self) -> dict[str, float]:
        """Milliseconds: first_byte and total from the start, and when traced each phase."""
        done = self.done if self.done is not None else perf_counter()
        headers = self.headers if self.headers is not None else done
        if not self.traced:
            return {"first_byte_ms": _ms(headers - self.start), "total_ms": _ms(done - self.start)}
        sent = self.sent if self.sent is not None else headers
        ready = self.connected if self.connected is not None else self.hop
        tls = 0.0
        if self.secure and self.connected is not None and self.tcp_done is not None:
            tls = max(self.connected - self.tcp_done, 0.0)
        return {
            "redirects_ms": _ms(self.hop - self.start),
            "dns_ms": _ms(self.dns),
            "connect_ms": _ms(max(ready - self.hop - self.dns - tls, 0.0)),
            "tls_ms": _ms(tls),
            "send_ms": _ms(max(sent - ready, 0.0)),
            "wait_ms": _ms(headers - sent),
            "receive_ms": _ms(done - headers),
            "first_byte_ms": _ms(headers - self.start),
            "total_ms": _ms(done - self.start),
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _timer(context: SimpleNamespace) -> Timer | None:
    timer = context.trace_request_ctx
    return timer if isinstance(timer, Timer) else None


async def _on_redirect(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    timer = _timer(context)
    if timer is not None:
        timer.hop = perf_counter()
        timer.dns, timer.connected, timer.sent, timer.headers = 0.0, None, None, None
        timer.tcp_done = None


async def _on_dns_start(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    timer = _timer(context)
    if timer is not None:
        timer.dns_start = perf_counter()


async def _on_dns_end(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    timer = _timer(context)
    if timer is not None:
        timer.dns += perf_counter() - timer.dns_start


async def _on_connected(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    timer = _timer(context)
    if timer is not None:
        timer.connected = perf_counter()


async def _on_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    timer = _timer(context)
    if timer is not None and timer.headers is None:
        timer.sent = perf_counter()


async def _on_headers(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    timer = _timer(context)
    if timer is not None:
        timer.headers = perf_counter()


def trace_config() -> aiohttp.TraceConfig:
    """The hooks the session of timed requests is made with (each passes its Timer as
    `trace_request_ctx`)."""
    config = aiohttp.TraceConfig()
    config.on_request_redirect.append(_on_redirect)
    config.on_dns_resolvehost_start.append(_on_dns_start)
    config.on_dns_resolvehost_end.append(_on_dns_end)
    config.on_connection_create_end.append(_on_connected)
    config.on_connection_reuseconn.append(_on_connected)
    config.on_request_headers_sent.append(_on_sent)
    config.on_request_chunk_sent.append(_on_sent)
    config.on_request_end.append(_on_headers)
    return config


# The Timer of the timed request this task is sending (set around it by the action).
CURRENT: ContextVar[Timer | None] = ContextVar("jobctl_http_timer", default=None)


class TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector that tells the current Timer when a new connection's socket is connected
    (asyncio makes the protocol then, before any TLS handshake)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = _NotingFactory(self._factory)  # type: ignore[assignment]


class _NotingFactory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], ResponseHandler]) -> None:
        self.make = make

    def __call__(self) -> ResponseHandler:
        timer = CURRENT.get()
        if timer is not None:
            timer.tcp_done = perf_counter()
        return self.make()


class TracedSession(SessionOwner):
    """The session of the requests of jobs with `--timings`: made with the tracing hooks."""

    def session(self) -> aiohttp.ClientSession:
        return self._get_session()

    def _trace_configs(self) -> list[aiohttp.TraceConfig]:
        return [trace_config()]

    def _connector(self) -> aiohttp.TCPConnector:
        return TimedConnector(limit=self.max_connections)


__all__ = ["CURRENT", "TimedConnector", "Timer", "TracedSession", "trace_config"]
