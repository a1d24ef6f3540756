"""A lean HTTP/1.1 client on asyncio for HTTP jobs (issue 18).

aiohttp's client costs about 0.25 ms of CPU per request; an HTTP job needs a fraction of what
it does. This one sends a request and reads its response through an `asyncio.Protocol` with a
byte buffer: one write, one wake-up when the response is complete. It does what the jobs got
from aiohttp, the same way (its rules are copied where the two could differ): URLs parsed and
percent-encoded by yarl, user:password@ sent as Basic auth, `Accept: */*` and
`Accept-Encoding: gzip, deflate` (such bodies are decompressed), keep-alive connections pooled
per (scheme, host, port) under one limit, idle ones closed after 15 s, DNS answers kept 10 s,
redirects (301/302/303/307/308) with the same method and header rules, TLS with the system's
trust store. A body is read to its end and counted, only its start kept (http_body's
`read_counted` semantics). Errors are the exceptions below; request.describe_error words them
as it words aiohttp's.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import ip_address
from time import monotonic, perf_counter
from typing import Any

import aiohappyeyeballs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

ACCEPT_ENCODING = "gzip, deflate"  # what aiohttp sends (without brotli or zstd installed)
KEEPALIVE = 15.0  # seconds an idle pooled connection is kept (aiohttp's default)
DNS_TTL = 10.0  # seconds a DNS answer is kept (aiohttp's default)
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried too (aiohttp's)
MAX_HEAD = 64 * 1024  # bytes of a response's status line and headers
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SCHEMES = frozenset({"", "http", "https", "ws", "wss"})  # what aiohttp lets through
_REDIRECT_SCHEMES = frozenset({"", "http", "https"})
_NO_BODY_METHODS = frozenset({"CONNECT", "GET", "HEAD", "OPTIONS", "TRACE"})
_TYPED_METHODS = frozenset({"PATCH", "POST", "PUT"})  # get a default Content-Type
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_SECURE = frozenset({"https", "wss"})
_DROPPED_ACROSS_ORIGINS = frozenset({"authorization", "cookie", "proxy-authorization"})
_HEX = b"0123456789abcdefABCDEF"
_BLANKS = " \t"
_CLOSED = "the HTTP client was closed"
_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]  # as getaddrinfo gives them


class ClientError(Exception):
    """A request that got no usable response."""


class InvalidUrl(ClientError):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class NotHttpUrl(InvalidUrl):
    """A URL whose scheme is not http or https."""


class ConnectError(ClientError):
    """No connection to host:port (`os_error` says why)."""

    def __init__(self, host: str, port: int | None, os_error: BaseException) -> None:
        super().__init__(host, port, os_error)
        self.host = host
        self.port = port
        self.os_error = os_error


class DnsError(ConnectError):
    pass


class TlsError(ConnectError):
    pass


class CertificateError(TlsError):
    pass


class ServerDisconnected(ClientError):
    """The connection ended before the response's headers were complete."""


class BadResponse(ClientError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BodyError(ClientError):
    """The response's body ended early or could not be decoded."""


class TooManyRedirects(ClientError):
    pass


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    url: URL  # the last request's, without user info and fragment (as aiohttp's response.url)
    body: bytes  # at most `keep` + 1 bytes, decompressed
    size: int  # the whole body's size, decompressed
    redirects: int
    location: str | None  # the Location of the last redirect followed
    headers_at: float  # perf_counter() when the headers were in

    @property
    def charset(self) -> str | None:
        return _charset(self.headers.get("Content-Type"))


@lru_cache(maxsize=256)
def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


# ---------------------------------------------------------------------------------- response


class _Reading:
    """The response being read on a connection: its head, then its body."""

    __slots__ = (
        "chunk_left",
        "chunks",
        "decoder",
        "done",
        "encoding",
        "headers",
        "headers_at",
        "keep",
        "kept",
        "left",
        "length",
        "mode",
        "reason",
        "received",
        "reusable",
        "size",
        "status",
    )

    def __init__(self, done: asyncio.Future[None], keep: int) -> None:
        self.done = done
        self.keep = keep
        self.mode = "head"  # head | length | chunk-size | chunk-data | chunk-end | trailers | close
        self.received = False  # any byte of the response came
        self.reusable = False
        self.status = 0
        self.reason = ""
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.headers_at = 0.0
        self.length = 0  # a Content-Length body's
        self.left = 0  # bytes of it still to come
        self.chunk_left = 0
        self.encoding = ""
        self.decoder: zlib._Decompress | None = None
        self.chunks: list[bytes] = []
        self.kept = 0
        self.size = 0

    def take(self, data: bytes) -> None:
        """A piece of the body as sent: decoded, counted, kept up to the cap."""
        if not data:
            return
        if self.encoding:
            data = self._decode(data)
        self.size += len(data)
        if self.kept <= self.keep:
            piece = data[: self.keep + 1 - self.kept]
            self.chunks.append(piece)
            self.kept += len(piece)

    def _decode(self, data: bytes) -> bytes:
        try:
            if self.decoder is None:
                bits = 16 + zlib.MAX_WBITS
                if self.encoding == "deflate":  # a raw deflate stream too, as aiohttp reads it
                    bits = zlib.MAX_WBITS if data[0] & 0xF == 8 else -zlib.MAX_WBITS
                self.decoder = zlib.decompressobj(wbits=bits)
            out = self.decoder.decompress(data, self.keep + 1)
            if not self.decoder.unconsumed_tail:
                return out
            # past the cap: count the rest in bounded pieces, never hold it
            extra = 0
            while self.decoder.unconsumed_tail:
                extra += len(self.decoder.decompress(self.decoder.unconsumed_tail, 1 << 20))
            self.size += extra
            return out
        except zlib.error as exc:
            raise BodyError(
                f"400, message: Can not decode content-encoding: {self.encoding}"
            ) from exc

    def finish(self) -> None:
        if self.decoder is not None:
            try:
                self.take_tail(self.decoder.flush())
            except zlib.error as exc:
                raise BodyError(
                    f"400, message: Can not decode content-encoding: {self.encoding}"
                ) from exc
            if self.encoding == "deflate" and not self.decoder.eof:
                raise BodyError("400, message: deflate")

    def take_tail(self, data: bytes) -> None:
        self.size += len(data)
        if data and self.kept <= self.keep:
            piece = data[: self.keep + 1 - self.kept]
            self.chunks.append(piece)
            self.kept += len(piece)


def _parse_head(head: bytes, reading: _Reading, method_is_head: bool) -> None:
    """The status line and headers into `reading`; its body's framing chosen (RFC 9112 6.3)."""
    # names and values as aiohttp decodes them: UTF-8, undecodable bytes kept as surrogates
    text = head.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    if "\r" in text or "\x00" in text:  # refused by aiohttp; a CR would rewrite a shown line
        line = next(line for line in text.split("\n") if "\r" in line or "\x00" in line)
        raise BadResponse(f"Invalid character in the response's head: {line!r}")
    lines = text.split("\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not _digits(code):
        raise BadResponse(f"Bad status line: {status_line!r}")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or " " in name:
            if line[:1] in _BLANKS and fields:  # obs-fold: its line break dropped, as aiohttp
                folded, previous = fields[-1]
                fields[-1] = (folded, (previous + line).strip(_BLANKS))
                continue
            raise BadResponse(f"Bad header line: {line!r}")
        fields.append((name, value.strip(" \t")))
    headers = CIMultiDict(fields)
    reading.status = status = int(code)
    reading.reason = reason.strip()
    reading.headers = headers
    connection = headers.get("Connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    if method_is_head or status < 200 or status in (204, 304):
        reading.mode = "done"
        reading.reusable = keep_alive and status != 101
        return
    encoding = headers.get("Content-Encoding", "").strip().lower()
    reading.encoding = encoding if encoding in ("gzip", "deflate") else ""
    transfer = headers.getall("Transfer-Encoding", None)
    if transfer is not None:
        # its lines are one list (RFC 9110 5.3): the last coding of the last line frames
        if ",".join(transfer).rsplit(",", 1)[-1].strip(" \t").lower() != "chunked":
            reading.mode = "close"  # RFC 9112 6.3: read until the connection closes
            return
        reading.mode = "chunk-size"
        reading.reusable = keep_alive and "Content-Length" not in headers
        return
    lengths = headers.getall("Content-Length", None)
    if lengths is None:
        reading.mode = "close"
        return
    if len(lengths) > 1:  # which one frames the body? (refused, as aiohttp refused it)
        raise BadResponse(f"Duplicate Content-Length: {lengths!r}")
    length = lengths[0]
    length = length.strip()
    if not _digits(length):
        raise BadResponse(f"Invalid Content-Length: {length!r}")
    reading.length = reading.left = int(length)
    reading.mode = "length" if reading.left else "done"
    reading.reusable = keep_alive


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() takes '²' (int() then raises) and '٢' (int() reads 2)."""
    return text.isascii() and text.isdigit()


# -------------------------------------------------------------------------------- connection


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends a request, parses its response from a byte buffer."""

    def __init__(self, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._reading: _Reading | None = None
        self._head_only = False

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reading = self._reading
        if reading is None or reading.done.done():
            self.close()  # bytes nobody asked for: this connection's framing is lost
            return
        reading.received = True
        self._buffer += data
        try:
            self._parse(reading)
        except ClientError as exc:
            self.close()
            if not reading.done.done():
                reading.done.set_exception(exc)

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reading = self._reading
        if reading is None or reading.done.done():
            return
        try:
            if reading.mode == "close":
                if exc is not None:  # reset, not closed: the body may be cut short
                    raise BodyError(f"Response payload is not completed: {exc!r}")
                reading.take(bytes(self._buffer))
                self._buffer.clear()
                reading.finish()
                reading.reusable = False
                reading.done.set_result(None)
                return
            if reading.mode == "head":
                raise ServerDisconnected()
            if reading.mode == "length":
                received = reading.length - reading.left
                raise BodyError(
                    "Response payload is not completed: <ContentLengthError: 400, "
                    "message='Not enough data to satisfy content length header "
                    f"(received {received} of {reading.length} bytes).'>"
                )
            raise BodyError(
                "Response payload is not completed: <TransferEncodingError: 400, "
                "message='Not enough data to satisfy transfer length header.'>"
            )
        except ClientError as error:
            reading.done.set_exception(error)

    # the client's side

    def start(self, request: bytes, keep: int, head_only: bool) -> _Reading:
        """Send `request`; its reading's `done` is set when the whole response is read."""
        assert self.transport is not None
        self._reading = reading = _Reading(self.loop.create_future(), keep)
        self._head_only = head_only
        self.transport.write(request)
        return reading

    def usable(self, now: float) -> bool:
        return (
            not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < KEEPALIVE
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self, error: ClientError) -> None:
        """Close, failing the response being read with `error` (connection_lost would take
        this close for the server's, and a body read to the close for a whole one)."""
        reading = self._reading
        if reading is not None and not reading.done.done():
            reading.done.set_exception(error)
        self.close()

    def _parse(self, reading: _Reading) -> None:
        buffer = self._buffer
        while True:
            mode = reading.mode
            if mode == "head":
                end, skip = buffer.find(b"\r\n\r\n"), 4
                # lines ended by a bare LF, as aiohttp read them (RFC 9112 2.2)
                bare = buffer.find(b"\n\n", 0, end if end >= 0 else len(buffer))
                if bare >= 0:
                    end, skip = bare, 2
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        raise BadResponse(f"the response's headers exceed {MAX_HEAD} bytes")
                    return
                head = bytes(buffer[:end]).removesuffix(b"\r")
                del buffer[: end + skip]
                if not reading.headers_at:
                    reading.headers_at = perf_counter()
                _parse_head(head, reading, self._head_only)
                if 100 <= reading.status < 200 and reading.status != 101:
                    reading.mode = "head"  # an interim response: the real one follows
                    reading.headers_at = 0.0
                    continue
            elif mode == "length":
                if not buffer:
                    return
                piece = bytes(buffer[: reading.left])
                del buffer[: len(piece)]
                reading.left -= len(piece)
                reading.take(piece)
                if reading.left:
                    return
                reading.mode = "done"
            elif mode == "close":
                if buffer:
                    reading.take(bytes(buffer))
                    buffer.clear()
                return
            elif mode == "chunk-size":
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise BadResponse("a chunk's size line is too long")
                    return
                # hex digits, then maybe BWS and extensions (int(, 16) takes '0x2', ' +2')
                line = bytes(buffer[:end]).split(b";", 1)[0].rstrip(b" \t")
                del buffer[: end + 2]
                if not line or line.strip(_HEX):
                    raise BadResponse(f"Invalid chunk size: {line!r}")
                if len(line.lstrip(b"0")) > 16:  # past 2**64: a server's mistake, not a body
                    raise BadResponse(f"Chunk size overflow: {line!r}")
                size = int(line, 16)
                reading.chunk_left = size
                reading.mode = "chunk-data" if size else "trailers"
            elif mode == "chunk-data":
                if not buffer:
                    return
                piece = bytes(buffer[: reading.chunk_left])
                del buffer[: len(piece)]
                reading.chunk_left -= len(piece)
                reading.take(piece)
                if reading.chunk_left:
                    return
                reading.mode = "chunk-end"
            elif mode == "chunk-end":
                if len(buffer) < 2:
                    return
                if buffer[:2] != b"\r\n":
                    raise BadResponse("a chunk does not end with CRLF")
                del buffer[:2]
                reading.mode = "chunk-size"
            elif mode == "trailers":
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        raise BadResponse(f"the response's trailers exceed {MAX_HEAD} bytes")
                    return
                del buffer[: end + 2]
                if end == 0:
                    reading.mode = "done"
            else:  # done
                reading.finish()
                if buffer:  # more than the response: the connection cannot be trusted
                    reading.reusable = False
                    buffer.clear()
                reading.done.set_result(None)
                return


# --------------------------------------------------------------------------------- deadlines


class _Deadline:
    __slots__ = ("cancelling", "state", "task", "timeout", "when")

    def __init__(self, task: asyncio.Task[Any], timeout: float, when: float) -> None:
        self.task: asyncio.Task[Any] | None = task  # None once ended (kept no longer)
        self.timeout = timeout
        self.when = when  # loop.time() at which it expires
        self.cancelling = task.cancelling()
        self.state = _RUNNING


_RUNNING, _EXPIRED, _ENDED = 0, 1, 2


class _Deadlines:
    """The requests' timeouts, as asyncio.timeout keeps them but with one timer per timeout
    length rather than one per request: requests given the same timeout expire in the order
    they started, so each length keeps its requests in a queue and one timer armed for the
    first still running. A request that ends leaves its queue when it gets to the front
    (requests mostly end in the order they started; one that hangs holds back those behind it,
    a few dozen bytes each). An expired request's task is cancelled
    at its moment, and `end` tells to raise TimeoutError for it, as asyncio.timeout does."""

    __slots__ = ("_queues", "_timers")

    def __init__(self) -> None:
        self._queues: dict[float, deque[_Deadline]] = {}
        self._timers: dict[float, asyncio.TimerHandle] = {}

    def start(self, timeout: float) -> _Deadline | None:
        """The current task's deadline, `timeout` seconds from now (None: asyncio.timeout's
        own, for a timeout that is not a positive number of seconds, or outside a task)."""
        task = asyncio.current_task()
        if task is None or not 0 < timeout < 1e9:
            return None
        loop = task.get_loop()
        deadline = _Deadline(task, timeout, loop.time() + timeout)
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        queue.append(deadline)
        if timeout not in self._timers:
            self._timers[timeout] = loop.call_at(deadline.when, self._expire, timeout)
        return deadline

    def end(self, deadline: _Deadline) -> bool:
        """The request is over: whether it expired (its task's cancellation was the
        timeout's, to be raised as TimeoutError if it ended cancelled)."""
        expired = deadline.state == _EXPIRED
        task, deadline.task, deadline.state = deadline.task, None, _ENDED
        assert task is not None
        queue = self._queues.get(deadline.timeout)
        if queue is not None:
            while queue and queue[0].state == _ENDED:
                queue.popleft()
            if not queue:
                del self._queues[deadline.timeout]  # its timer finds nothing, and stops
        return expired and task.uncancel() <= deadline.cancelling

    def _expire(self, timeout: float) -> None:
        """The timer of `timeout`'s queue: cancel the tasks of the requests whose moment has
        come, and wait for the next one's."""
        del self._timers[timeout]
        queue = self._queues.get(timeout)
        if not queue:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        while queue:
            first = queue[0]
            if first.state == _RUNNING and first.task is not None:
                if first.when > now:
                    self._timers[timeout] = loop.call_at(first.when, self._expire, timeout)
                    return
                first.state = _EXPIRED
                first.task.cancel()
            queue.popleft()
        del self._queues[timeout]

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


# ------------------------------------------------------------------------------------ client


class HttpClient:
    """Sends requests over pooled keep-alive connections; belongs to the loop it is used in."""

    def __init__(self, max_connections: int = 256) -> None:
        self.max_connections = max_connections
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._dns: dict[tuple[str, int], tuple[float, list[_AddrInfo]]] = {}
        self._tls: ssl.SSLContext | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self._deadlines = _Deadlines()

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        timeout: float,
        max_redirects: int = 10,
        keep: int = 64 * 1024,
    ) -> Response:
        """The response to `method url` after at most `max_redirects` redirects (0: none
        followed), all within `timeout` seconds (TimeoutError else)."""
        deadline = self._deadlines.start(timeout)
        if deadline is None:
            async with asyncio.timeout(timeout):
                return await self._request(method, url, headers, body, max_redirects, keep)
        try:
            response = await self._request(method, url, headers, body, max_redirects, keep)
        except BaseException as exc:
            if self._deadlines.end(deadline) and type(exc) is asyncio.CancelledError:
                raise TimeoutError from exc
            raise
        self._deadlines.end(deadline)
        return response

    async def close(self) -> None:
        self._closed = True
        self._deadlines.close()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for connection in self._busy:
            connection.abort(ClientError(_CLOSED))
        self._busy.clear()
        for waiter in self._waiters:  # a request waiting for a connection fails the same way
            if not waiter.done():
                waiter.set_exception(ClientError(_CLOSED))
        self._waiters.clear()

    async def _request(
        self,
        method: str,
        url_text: str,
        given: dict[str, str],
        body: bytes | None,
        max_redirects: int,
        keep: int,
    ) -> Response:
        try:
            url = _url(url_text)
        except ValueError:
            raise InvalidUrl(url_text) from None
        if url.scheme not in _SCHEMES:
            raise NotHttpUrl(str(url))
        method = method.upper()
        headers = list(given.items())
        auth: str | None = None
        redirects = 0
        location: str | None = None
        while True:
            url, from_url = _strip_auth(url)
            if not url.raw_host:
                raise InvalidUrl(str(url))
            if auth is None or (redirects and from_url is not None):
                auth = from_url
            if auth is not None and any(name.lower() == "authorization" for name, _ in headers):
                raise ValueError(
                    "Cannot combine AUTHORIZATION header with AUTH argument or credentials "
                    "encoded in URL"
                )
            response = await self._exchange(method, url, headers, auth, body, keep)
            if response.status not in _REDIRECTS or max_redirects <= 0:
                break
            redirects += 1
            location = response.headers.get("Location")
            if redirects > max_redirects:
                raise TooManyRedirects(f"more than {max_redirects} redirects")
            if (response.status == 303 and method != "HEAD") or (
                response.status in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            target = location or response.headers.get("URI")
            if target is None:
                break  # a redirect with nowhere to go: it is the response (as in aiohttp)
            previous, url = url, self._redirect_url(url, target)
            if url.origin() != previous.origin():
                auth = None
                headers = [(n, v) for n, v in headers if n.lower() not in _DROPPED_ACROSS_ORIGINS]
        response.redirects = redirects
        response.location = location
        return response

    @staticmethod
    def _redirect_url(current: URL, target: str) -> URL:
        try:
            parsed = URL(target, encoded=False)
        except ValueError:
            raise InvalidUrl(target) from None
        scheme = parsed.scheme
        if scheme not in _REDIRECT_SCHEMES:
            raise NotHttpUrl(target)
        if not scheme or (scheme == current.scheme and _has_no_authority(target, scheme)):
            parsed = current.join(parsed)
        try:
            parsed.origin()
        except ValueError:
            raise InvalidUrl(str(parsed)) from None
        return parsed

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        auth: str | None,
        body: bytes | None,
        keep: int,
    ) -> Response:
        request, close = _request_bytes(method, url, headers, auth, body)
        key = (url.scheme, url.raw_host or "", url.port or 0)
        retry = method in _IDEMPOTENT
        fresh = False
        while True:
            connection = await self._acquire(key, fresh)
            reading = connection.start(request, keep, method == "HEAD")
            try:
                await reading.done
            except ServerDisconnected:
                self._release(connection, False)
                if not (retry and connection.reused and not reading.received):
                    raise
                retry, fresh = False, True  # once, on a new connection (RFC 9112 9.3.1)
                continue
            except BaseException:
                self._release(connection, False)
                raise
            # a request that asked `Connection: close` leaves its connection to the server
            self._release(connection, reading.reusable and not close)
            return Response(
                status=reading.status,
                reason=reading.reason,
                headers=CIMultiDictProxy(reading.headers),
                url=url.with_fragment(None) if url.raw_fragment else url,
                body=b"".join(reading.chunks),
                size=reading.size,
                redirects=0,
                location=None,
                headers_at=reading.headers_at,
            )

    # the pool

    async def _acquire(self, key: tuple[str, str, int], fresh: bool = False) -> _Connection:
        """An idle connection to `key` (unless `fresh`), else a new one when fewer than
        max_connections are busy, else the first of these once a connection is released."""
        while True:
            idle = None if fresh else self._idle.get(key)
            if idle:
                now = monotonic()
                while idle:
                    connection = idle.pop()
                    if connection.usable(now):
                        connection.reused = True
                        self._busy.add(connection)
                        return connection
                    connection.close()
            if len(self._busy) < self.max_connections:
                break
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._wake()  # pass on the turn this one was given
                raise
        connection = _Connection(key, asyncio.get_running_loop())
        self._busy.add(connection)
        try:
            await self._connect(connection)
        except BaseException:
            self._busy.discard(connection)
            connection.close()
            self._wake()
            raise
        return connection

    def _release(self, connection: _Connection, reusable: bool) -> None:
        self._busy.discard(connection)
        if reusable and not connection.closed and not self._closed:
            connection.idle_since = monotonic()
            connection._reading = None
            self._idle.setdefault(connection.key, []).append(connection)
            if self._sweep is None:
                self._sweep = asyncio.get_running_loop().call_later(KEEPALIVE, self._swept)
        else:
            connection.close()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _swept(self) -> None:
        """Close the connections idle for KEEPALIVE seconds; again later while any is left."""
        self._sweep = None
        now = monotonic()
        for key, connections in list(self._idle.items()):
            kept = [c for c in connections if c.usable(now)]
            for connection in connections:
                if connection not in kept:
                    connection.close()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._sweep = asyncio.get_running_loop().call_later(KEEPALIVE, self._swept)

    # connecting

    async def _connect(self, connection: _Connection) -> None:
        """Connect as aiohttp does: the host's addresses raced by Happy Eyeballs (RFC 8305,
        a new attempt every 0.25 s), then TLS on the socket that answered first."""
        scheme, host, port = connection.key
        loop = asyncio.get_running_loop()
        secure = scheme in _SECURE
        tls = self._tls_context() if secure else None
        infos = list(await self._resolve(host, port))
        last: ConnectError | None = None
        while infos:
            try:
                sock = await aiohappyeyeballs.start_connection(
                    infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop
                )
                await loop.create_connection(
                    lambda: connection,
                    sock=sock,
                    ssl=tls,
                    server_hostname=host.rstrip(".") if secure else None,
                )
                return
            except ssl.CertificateError as exc:
                last = CertificateError(host, port, exc)
            except ssl.SSLError as exc:
                last = TlsError(host, port, exc)
            except OSError as exc:
                if exc.errno is None and isinstance(exc, TimeoutError):
                    raise
                last = ConnectError(host, port, exc)
            aiohappyeyeballs.pop_addr_infos_interleave(infos, None)
        assert last is not None
        raise last

    async def _resolve(self, host: str, port: int) -> list[_AddrInfo]:
        literal = _literal(host)
        if literal is not None:
            address = (host, port, 0, 0) if literal == socket.AF_INET6 else (host, port)
            return [(literal, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
        now = monotonic()
        cached = self._dns.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
            )
        except OSError as exc:
            raise DnsError(host, port, exc) from exc
        addresses: list[_AddrInfo] = [tuple(info) for info in infos]  # type: ignore[misc]
        if not addresses:
            raise DnsError(host, port, OSError("no address"))
        if len(self._dns) > 1024:
            self._dns.clear()
        self._dns[(host, port)] = (now + DNS_TTL, addresses)
        return addresses

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


@lru_cache(maxsize=1024)
def _url(text: str) -> URL:
    """yarl's URL, once per text: a job sends the same URL again and again (URLs are
    immutable, and keep the parts they computed)."""
    return URL(text)


@lru_cache(maxsize=1024)
def _literal(host: str) -> int | None:
    """The address family of an IP literal host, None for a name."""
    try:
        return socket.AF_INET6 if ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


def _strip_auth(url: URL) -> tuple[URL, str | None]:
    """The URL without user:password@, and the Basic Authorization value they make."""
    if url.raw_user is None and url.raw_password is None:
        return url, None
    user, password = url.user or "", url.password or ""
    if ":" in user:
        raise ValueError('A ":" is not allowed in login (RFC 1945#section-11.1)')
    token = base64.b64encode(f"{user}:{password}".encode("latin1")).decode("latin1")
    return url.with_user(None), f"Basic {token}"


def _has_no_authority(location: str, scheme: str) -> bool:
    """A Location like "http:/path" or "http:path" (no "//" after the scheme), as aiohttp
    tells it: relative to the current URL."""
    location = location.strip("".join(map(chr, range(33)))).replace("\t", "").replace("\n", "")
    location = location.replace("\r", "")
    rest = location[len(scheme) + 1 : len(scheme) + 3]
    return rest[:1] not in ("/", "\\") or rest[1:] not in ("/", "\\")


def _request_bytes(
    method: str,
    url: URL,
    given: Iterable[tuple[str, str]],
    auth: str | None,
    body: bytes | None,
) -> tuple[bytes, bool]:
    """The request's head (headers in aiohttp's order) and body, as sent; and whether it
    asks the server to close the connection after its response (`Connection: close`)."""
    host = url.host_port_subcomponent
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1", ""]
    seen: set[str] = set()
    length: str | None = None
    close = False
    for name, value in given:
        lowered = name.lower()
        if lowered == "host":
            host = value
            continue
        if lowered == "content-length":
            length = value
        elif lowered == "connection":
            close = "close" in value.lower()
        seen.add(lowered)
        lines.append(f"{name}: {value}")
    lines[1] = f"Host: {host}"
    if "accept" not in seen:
        lines.append("Accept: */*")
    if "accept-encoding" not in seen:
        lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    if body is not None:
        if length is None:
            lines.append(f"Content-Length: {len(body)}")
        elif not _digits(length):
            raise ValueError(f"Invalid Content-Length header: {length!r}")
        else:
            body = body[: int(length)]
        if "content-type" not in seen:
            lines.append("Content-Type: application/octet-stream")
    else:
        if method not in _NO_BODY_METHODS and length is None:
            lines.append("Content-Length: 0")
        if method in _TYPED_METHODS and "content-type" not in seen:
            lines.append("Content-Type: application/octet-stream")
    lines.append("\r\n")
    head = "\r\n".join(lines).encode("utf-8")
    return (head + body if body else head), close


__all__ = [
    "ACCEPT_ENCODING",
    "BadResponse",
    "BodyError",
    "CertificateError",
    "ClientError",
    "ConnectError",
    "DnsError",
    "HttpClient",
    "InvalidUrl",
    "NotHttpUrl",
    "Response",
    "ServerDisconnected",
    "TlsError",
    "TooManyRedirects",
]
