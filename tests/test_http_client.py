"""The lean HTTP/1.1 client of HTTP jobs (jobctl/actions/http_client.py), against real servers
on 127.0.0.1 port 0: raw asyncio servers that frame their responses by hand (chunked, gzip,
read-to-close, keep-alive then close, slow, interim 1xx), aiohttp.web for redirect chains, and
HTTPS with a self-signed certificate made by openssl.

Where jobs saw aiohttp before, the same request is sent both ways (a job with `--timings` still
goes through aiohttp) and what is stored must be the same, and so must the bytes sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import socket
import ssl
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from jobctl.actions import Cancelled, FireContext, Outcome, http_client
from jobctl.actions.http import HttpFirer
from jobctl.actions.http_client import HttpClient
from jobctl.actions.request import describe_error
from jobctl.models import HttpSpec
from tests.check_servers import make_certificate

SLOT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def context(timeout: float = 5.0, env: Mapping[str, str] | None = None) -> FireContext:
    return FireContext(
        job="probe", run_id=7, scheduled_for=SLOT, attempt=1, timeout=timeout, env=dict(env or {})
    )


def spec(url: str, **fields: Any) -> HttpSpec:
    return HttpSpec.from_dict({"method": "GET", "url": url, "headers": {}, "body": None, **fields})


class RawServer:
    """asyncio.start_server on 127.0.0.1:0 with `handler` per connection; it keeps every
    request head it read and counts the connections it accepted."""

    def __init__(
        self, handler: Handler, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ):
        self.handler = handler
        self.tls = tls
        self.host = host
        self.heads: list[bytes] = []
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.closed = asyncio.Event()  # a client closed its end
        self.writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.base = ""

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base = f"{scheme}://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self.writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass  # a client gone, or the test over
        finally:
            self.open -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        """One request: its head and its body (Content-Length framed); b"" heads at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed.set()
            return b"", b""
        self.heads.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head, await reader.readexactly(length)


def answering(*responses: bytes, then_close: bool = False) -> Callable[[RawServer], Handler]:
    """A handler that answers the requests of a connection with `responses`, in turn (the
    last one again when they run out)."""

    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served = 0
            while True:
                head, _ = await server.read_request(reader)
                if not head:
                    return
                response = responses[min(served, len(responses) - 1)]
                if head.startswith(b"HEAD "):
                    response = response[: response.index(b"\r\n\r\n") + 4]
                writer.write(response)
                await writer.drain()
                served += 1
                if then_close:
                    return

        return handle

    return make


async def raw_server(make: Callable[[RawServer], Handler], **options: Any) -> RawServer:
    server = RawServer(lambda r, w: asyncio.sleep(0), **options)
    server.handler = make(server)
    return await server.__aenter__()


def fire_both(
    make_servers: Callable[[], Awaitable[tuple[list[Any], str]]],
    http_spec: Callable[[str], HttpSpec],
    **ctx: Any,
) -> list[tuple[Outcome, list[bytes]]]:
    """The job fired through http_client and through aiohttp (`timings`), each against its own
    fresh servers: the outcomes and the request heads the first server read, with the
    servers' port numbers as PORT."""

    async def once(timings: bool) -> tuple[Outcome, list[bytes]]:
        servers, base = await make_servers()
        try:
            async with HttpFirer() as firer:
                job = dataclasses.replace(http_spec(base), timings=timings or None)
                outcome = await firer.fire(job, context(**ctx))
                heads = list(getattr(servers[0], "heads", [])) if servers else []
        finally:
            for server in servers:
                await server.__aexit__(None, None, None)
        port = base.rsplit(":", 1)[-1] if base else ""
        if not port:
            return outcome, heads
        return _ported(outcome, port), [head.replace(port.encode(), b"PORT") for head in heads]

    return [asyncio.run(once(False)), asyncio.run(once(True))]


def _ported(outcome: Outcome, port: str) -> Outcome:
    text = json.dumps(dataclasses.asdict(outcome), default=str).replace(port, "PORT")
    fields = json.loads(text)
    fields["started_at"], fields["finished_at"] = outcome.started_at, outcome.finished_at
    return Outcome(**fields)


def stored(outcome: Outcome) -> dict[str, Any]:
    """What the engine stores, but the timings (their phases differ by design)."""
    details = {k: v for k, v in outcome.details.items() if k != "timings"}
    if "response_headers" in details:  # aiohttp.web's Date may tick between the two fires
        details["response_headers"] = {
            k: v for k, v in details["response_headers"].items() if k != "Date"
        }
    return {
        "status": outcome.status,
        "http_status": outcome.http_status,
        "output": outcome.output,
        "error": outcome.error,
        "snapshot": outcome.snapshot,
        "details": details,
    }


def assert_same(results: list[tuple[Outcome, list[bytes]]], *, heads: bool = True) -> Outcome:
    (ours, our_heads), (theirs, their_heads) = results
    assert stored(ours) == stored(theirs)
    if heads:
        assert our_heads == their_heads
    if ours.http_status is not None:
        assert set(ours.details["timings"]) == {"first_byte_ms", "total_ms"}
    return ours


def one_raw(
    *responses: bytes, then_close: bool = False
) -> Callable[[], Awaitable[tuple[list[Any], str]]]:
    async def make() -> tuple[list[Any], str]:
        server = await raw_server(answering(*responses, then_close=then_close))
        return [server], server.base

    return make


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


# ------------------------------------------------------------------ the same as aiohttp


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"method": "POST", "body": '{"a": "é"}', "headers": {"Content-Type": "application/json"}},
        {"method": "POST", "body": "x=1"},
        {"method": "POST"},
        {"method": "DELETE"},
        {"method": "HEAD"},
        {"method": "PUT", "body": ""},
        {"headers": {"Accept": "text/html", "Accept-Encoding": "identity", "Host": "example.org"}},
        {"headers": {"User-Agent": "mine/1", "X-Token": "${TOKEN}"}},
    ],
    ids=["get", "post-json", "post-untyped", "post-empty", "delete", "head", "put-empty",
         "own-accept-host", "own-agent-secret"],
)  # fmt: skip
def test_requests_are_sent_byte_for_byte_as_aiohttp_sent_them(fields: dict[str, Any]) -> None:
    results = fire_both(
        one_raw(OK), lambda base: spec(base + "/p?q=1", **fields), env={"TOKEN": "t0k"}
    )
    ours = assert_same(results)
    assert ours.status == "succeeded", ours.error
    assert ours.output == ("" if fields.get("method") == "HEAD" else "ok")


@pytest.mark.parametrize(
    "path",
    [
        "/a b/ü?q=a b&r=ü%zz#frag",
        "/x?a=1&b=%2F&c=/?d#x",
        "/%7Efoo/a%2fb/[x]/{y}|z^`\"<>;,=+$!*'()@:",
        "/../a/./b/..",
        "",
    ],
)
def test_urls_are_encoded_as_aiohttp_encoded_them(path: str) -> None:
    ours = assert_same(fire_both(one_raw(OK), lambda base: spec(base + path)))
    assert ours.status == "succeeded", ours.error


def test_user_and_password_in_the_url_become_basic_auth_kept_out_of_the_snapshot() -> None:
    results = fire_both(one_raw(OK), lambda base: spec(base.replace("//", "//me:p%40ss@") + "/"))
    ours = assert_same(results)
    assert b"Authorization: Basic bWU6cEBzcw==\r\n" in results[0][1][0]
    assert ours.snapshot is not None and ours.snapshot["url"].startswith("http://me:***@")
    assert "p%40ss" not in repr(stored(ours))

    both = fire_both(
        one_raw(OK),
        lambda base: spec(base.replace("//", "//me:pw@") + "/", headers={"Authorization": "x"}),
    )
    ours = assert_same(both)
    assert ours.error == (
        "request failed: Cannot combine AUTHORIZATION header with AUTH argument or "
        "credentials encoded in URL"
    )


GZIPPED = gzip.compress(b"hello gzip " * 50)
DEFLATED = zlib.compress(b"hello deflate " * 50)
RAW_DEFLATED = zlib.compress(b"raw deflate")[2:-4]


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(GZIPPED), GZIPPED),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s"
        % (len(DEFLATED), DEFLATED),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s"
        % (len(RAW_DEFLATED), RAW_DEFLATED),
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(GZIPPED), GZIPPED),
        b"HTTP/1.1 203 Fine Thanks\r\nContent-Type: text/plain; charset=latin-1\r\n"
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 6\r\n\r\ncaf\xe9 !",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + OK,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
        b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\n\r\nread until the server closes",
    ],
    ids=["chunked", "gzip", "deflate", "raw-deflate", "gzip-chunked", "charset-cookies",
         "simple", "interim-1xx", "204", "500", "no-reason", "read-to-close"],
)  # fmt: skip
def test_responses_are_read_as_aiohttp_read_them(response: bytes) -> None:
    close = response.startswith(b"HTTP/1.0")
    ours = assert_same(
        fire_both(
            one_raw(response, then_close=close),
            lambda base: spec(base + "/", expect="2xx,500", expect_body="[a-z]+"),
        )
    )
    assert ours.http_status is not None, ours.error


def test_a_body_over_the_cap_is_counted_to_its_end_decompressed() -> None:
    big = b"0123456789" * 30_000
    packed = gzip.compress(big)
    response = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(packed),
        packed,
    )
    ours = assert_same(fire_both(one_raw(response), lambda base: spec(base + "/")))
    assert ours.details["body_size"] == len(big)
    assert ours.output is not None
    assert ours.output.endswith(f"[output truncated: {len(big)} bytes in all, 65536 kept]")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"", "the server closed the connection without a complete response"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "the server closed the connection without a complete response"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            "the response body could not be read: Response payload is not completed: "
            "<ContentLengthError: 400, message='Not enough data to satisfy content length "
            "header (received 3 of 10 bytes).'>",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "the response body could not be read: Response payload is not completed: "
            "<TransferEncodingError: 400, message='Not enough data to satisfy transfer length "
            "header.'>",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
            "the response body could not be read: 400, message: Can not decode "
            "content-encoding: gzip",
        ),
    ],
    ids=["nothing", "cut-head", "cut-length", "cut-chunked", "bad-gzip"],
)  # fmt: skip
def test_broken_responses_fail_as_with_aiohttp(response: bytes, error: str) -> None:
    """(aiohttp sends a GET again when a new connection closed before the response's head;
    http_client only when a kept connection did, the server having closed it meanwhile.)"""
    results = fire_both(one_raw(response, then_close=True), lambda base: spec(base + "/"))
    ours = assert_same(results, heads=False)
    assert (ours.status, ours.error) == ("failed", error)
    assert len(results[0][1]) == 1


def test_a_malformed_response_is_one_line_not_a_traceback() -> None:
    for response in (
        b"HTTP/1.1 abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        (ours, _), _ = fire_both(one_raw(response, then_close=True), lambda base: spec(base + "/"))
        assert ours.status == "failed"
        assert ours.error is not None and ours.error.startswith("bad response: ")
        assert "\n" not in ours.error


def test_connection_failures_and_bad_urls_are_worded_as_before() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]

    async def nothing() -> tuple[list[Any], str]:
        return [], ""

    cases = {
        f"http://127.0.0.1:{free}/": f"cannot connect to 127.0.0.1:{free}: Connection refused",
        # every address of the name refused (::1 too, where it resolves to both)
        f"http://localhost:{free}/": f"cannot connect to localhost:{free}: Connection refused",
        "http://no-such-host.invalid/": "cannot resolve host no-such-host.invalid: ",
        "ftp://example.com/x": "not an http:// or https:// URL: ftp://example.com/x",
        "http:///x": "invalid URL http:///x",
        "http://[::1/": "invalid URL http://[::1/",
        "http://127.0.0.1:99999/": "invalid URL http://127.0.0.1:99999/",
        "notaurl": "invalid URL notaurl",
    }
    for url, error in cases.items():
        ours = assert_same(fire_both(nothing, lambda base, url=url: spec(url)))
        assert ours.status == "failed"
        assert ours.error is not None and ours.error.startswith(error), (url, ours.error)


# ---------------------------------------------------------------------------- redirects


def redirect_app(log: list[tuple[str, str, str, bytes]], other: str = "") -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        log.append(
            (request.method, request.path_qs, request.headers.get("Authorization", ""), body)
        )
        parts = request.path.strip("/").split("/")
        if parts[0] == "chain":
            left = int(parts[1])
            if left == 0:
                return web.Response(text="arrived")
            raise web.HTTPFound(f"/chain/{left - 1}")
        if parts[0] == "status":  # /status/303 -> /landing (relative), keeping a fragment
            return web.Response(status=int(parts[1]), headers={"Location": "../landing?x=1#part"})
        if parts[0] == "away":  # to the same server under another host name
            return web.Response(status=307, headers={"Location": other + "/landing"})
        if parts[0] == "nowhere":
            return web.Response(status=302, text="no location")
        if parts[0] == "ftp":
            return web.Response(status=302, headers={"Location": "ftp://example.com/"})
        return web.Response(text=f"{request.method} {body.decode()}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class AppServer:
    def __init__(self, app_for: Callable[[str], web.Application]) -> None:
        self.app_for = app_for
        self.log: list[tuple[str, str, str, bytes]] = []
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> AppServer:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.runner = web.AppRunner(self.app_for(f"http://localhost:{self.port}"), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def app_both(http_spec: Callable[[str], HttpSpec], **ctx: Any) -> list[tuple[Outcome, list[Any]]]:
    async def make() -> tuple[list[Any], str]:
        server = AppServer(lambda other: redirect_app(log, other))
        log: list[tuple[str, str, str, bytes]] = server.log
        await server.__aenter__()
        holder.append(server)
        return [server], server.base

    holder: list[AppServer] = []
    results = fire_both(make, http_spec, **ctx)
    return [(outcome, server.log) for (outcome, _), server in zip(results, holder, strict=True)]


def test_redirect_chains_follow_aiohttp_rules() -> None:
    for limit, path in (
        (None, "/chain/10"),
        (None, "/chain/11"),
        (2, "/chain/2"),
        (2, "/chain/3"),
        (0, "/chain/1"),
    ):
        results = app_both(lambda base, p=path, n=limit: spec(base + p, max_redirects=n))
        (ours, our_log), (theirs, their_log) = results
        assert stored(ours) == stored(theirs)
        assert our_log == their_log
    assert ours.error == "HTTP 302: a redirect, refused (--max-redirects 0)"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD"])
def test_redirect_methods_bodies_fragments_and_relative_locations(status: int, method: str) -> None:
    body = None if method == "HEAD" else "payload"
    results = app_both(lambda base: spec(base + f"/status/{status}", method=method, body=body))
    (ours, our_log), (theirs, their_log) = results
    assert stored(ours) == stored(theirs)
    assert our_log == their_log
    assert ours.details["redirects"] == 1
    assert ours.details["final_url"].endswith("/landing?x=1#part")


def test_credentials_are_dropped_when_a_redirect_changes_host() -> None:
    results = app_both(
        lambda base: spec(
            base + "/away", method="POST", body="b", headers={"Authorization": "Bearer ${T}"}
        ),
        env={"T": "secret-t"},
    )
    (ours, our_log), (theirs, their_log) = results
    assert stored(ours) == stored(theirs)
    assert our_log == their_log
    assert [entry[2] for entry in our_log] == ["Bearer secret-t", ""]
    assert [entry[3] for entry in our_log] == [b"b", b"b"]  # a 307 keeps the body
    assert ours.details["final_url"].startswith("http://localhost:")


def test_odd_redirects_end_as_with_aiohttp() -> None:
    for path in ("/nowhere", "/ftp"):
        results = app_both(lambda base, p=path: spec(base + p, expect="2xx,3xx"))
        (ours, _), (theirs, _) = results
        assert stored(ours) == stored(theirs), path


# ---------------------------------------------------------------------- the connections


def test_keep_alive_connections_are_reused_and_closed_with_the_firer() -> None:
    """(The server sets a cookie each time: none is ever sent back.)"""
    cookie = OK.replace(b"\r\n\r\n", b"\r\nSet-Cookie: session=abc; Path=/\r\n\r\n", 1)

    async def scenario() -> RawServer:
        server = await raw_server(answering(cookie))
        try:
            async with HttpFirer() as firer:
                for _ in range(5):
                    outcome = await firer.fire(spec(server.base + "/"), context())
                    assert outcome.status == "succeeded", outcome.error
                assert server.connections == 1
            await asyncio.wait_for(server.closed.wait(), 10)  # closing the firer closed it
            return server
        finally:
            await server.__aexit__(None, None, None)

    server = asyncio.run(scenario())
    assert len(server.heads) == 5
    assert not any(b"cookie:" in head.lower() for head in server.heads)


def test_a_connection_the_server_closed_is_not_reused() -> None:
    """The server answers with keep-alive, then closes the idle connection: the next request
    goes on a new one."""

    async def scenario() -> None:
        server = await raw_server(answering(OK, then_close=True))
        try:
            async with HttpFirer() as firer:
                for _ in range(3):
                    outcome = await firer.fire(spec(server.base + "/"), context())
                    assert outcome.status == "succeeded", outcome.error
                    await asyncio.wait_for(_until(lambda: server.open == 0), 10)
                assert server.connections == 3
        finally:
            await server.__aexit__(None, None, None)

    asyncio.run(scenario())


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("PUT", True), ("POST", False)])
def test_a_stale_pooled_connection_is_retried_once_when_nothing_came(
    method: str, retried: bool
) -> None:
    """The server reads the second request on a kept connection and closes without a byte of
    answer (a keep-alive timeout racing the request): an idempotent request is sent again on a
    new connection, a POST is not (it may have been acted on)."""

    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head, _ = await server.read_request(reader)
            writer.write(OK)
            await writer.drain()
            if server.connections == 1:
                await server.read_request(reader)  # read, and dropped unanswered
                return
            while head:
                head, _ = await server.read_request(reader)
                if head:
                    writer.write(OK)
                    await writer.drain()

        return handle

    async def scenario() -> tuple[Outcome, RawServer]:
        server = await raw_server(make)
        try:
            async with HttpFirer() as firer:
                first = await firer.fire(spec(server.base + "/"), context())
                assert first.status == "succeeded", first.error
                second = await firer.fire(
                    spec(server.base + "/", method=method, body="b"), context()
                )
                return second, server
        finally:
            await server.__aexit__(None, None, None)

    outcome, server = asyncio.run(scenario())
    if retried:
        assert outcome.status == "succeeded", outcome.error
        assert (server.connections, len(server.heads)) == (2, 3)
    else:
        assert outcome.error == "the server closed the connection without a complete response"
        assert (server.connections, len(server.heads)) == (1, 2)


def test_the_retry_goes_on_a_new_connection_not_another_kept_one() -> None:
    """Two kept connections, both dropped by the server when next used: the retry of a GET
    opens a new connection rather than trying the other stale one."""

    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            number = server.connections
            head, _ = await server.read_request(reader)
            if number <= 2:
                await _until(lambda: len(server.heads) >= 2)  # both in flight at once
            while head:
                writer.write(OK)
                await writer.drain()
                head, _ = await server.read_request(reader)
                if number <= 2:
                    return  # read, and dropped unanswered

        return handle

    async def scenario() -> tuple[list[Outcome], RawServer]:
        server = await raw_server(make)
        try:
            async with HttpFirer() as firer:
                first = await asyncio.gather(
                    *(firer.fire(spec(server.base + "/"), context()) for _ in range(2))
                )
                then = await firer.fire(spec(server.base + "/"), context())
                return [*first, then], server
        finally:
            await server.__aexit__(None, None, None)

    outcomes, server = asyncio.run(scenario())
    assert [o.status for o in outcomes] == ["succeeded"] * 3, [o.error for o in outcomes]
    assert (server.connections, len(server.heads)) == (3, 4)


def test_max_connections_bounds_the_connections_open_at_once() -> None:
    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (await server.read_request(reader))[0]:
                await asyncio.sleep(0.02)
                writer.write(OK)
                await writer.drain()

        return handle

    async def scenario() -> tuple[list[Outcome], RawServer]:
        server = await raw_server(make)
        try:
            async with HttpFirer(max_connections=3) as firer:
                outcomes = await asyncio.gather(
                    *(firer.fire(spec(server.base + "/"), context(timeout=30)) for _ in range(20))
                )
                return list(outcomes), server
        finally:
            await server.__aexit__(None, None, None)

    outcomes, server = asyncio.run(scenario())
    assert [o.status for o in outcomes] == ["succeeded"] * 20
    assert server.most_open <= 3 and server.connections <= 3
    assert len(server.heads) == 20


def test_the_timeout_covers_a_body_that_trickles() -> None:
    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)

        return handle

    async def scenario() -> Outcome:
        server = await raw_server(make)
        try:
            async with HttpFirer() as firer:
                return await firer.fire(spec(server.base + "/"), context(timeout=0.4))
        finally:
            await server.__aexit__(None, None, None)

    outcome = asyncio.run(scenario())
    assert (outcome.status, outcome.error) == ("timed_out", "timed out after 400ms")
    assert 300 <= outcome.duration_ms < 3000


def test_a_cancelled_fire_is_interrupted_and_its_connection_closed() -> None:
    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            await server.read_request(reader)  # until the client closes

        return handle

    async def scenario() -> tuple[BaseException | None, RawServer]:
        server = await raw_server(make)
        try:
            async with HttpFirer() as firer:
                task = asyncio.ensure_future(firer.fire(spec(server.base + "/"), context()))
                await _until(lambda: len(server.heads) == 1)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError as exc:
                    error: BaseException | None = exc
                await asyncio.wait_for(server.closed.wait(), 10)
                return error, server
        finally:
            await server.__aexit__(None, None, None)

    error, _ = asyncio.run(scenario())
    assert isinstance(error, Cancelled)
    assert error.outcome.status == "interrupted"
    assert error.outcome.snapshot is not None


def test_an_ipv6_literal() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")

    async def scenario() -> tuple[Outcome, RawServer]:
        server = await raw_server(answering(OK), host="::1")
        try:
            async with HttpFirer() as firer:
                return await firer.fire(spec(server.base + "/v6"), context()), server
        finally:
            await server.__aexit__(None, None, None)

    outcome, server = asyncio.run(scenario())
    assert outcome.status == "succeeded", outcome.error
    assert b"Host: [::1]:" in server.heads[0]


# ------------------------------------------------------------------------------- HTTPS


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


def server_tls(certificate: tuple[Path, Path], names: list[str]) -> ssl.SSLContext:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    tls.sni_callback = lambda sock, name, context: names.append(name) if name else None
    return tls


def test_https_verifies_the_certificate_and_says_why_it_fails(
    certificate: tuple[Path, Path],
) -> None:
    names: list[str] = []

    async def make() -> tuple[list[Any], str]:
        server = await raw_server(answering(OK), tls=server_tls(certificate, names))
        return [server], server.base

    ours = assert_same(fire_both(make, lambda base: spec(base + "/")))
    assert ours.status == "failed"
    assert ours.error == "TLS certificate error for 127.0.0.1: self-signed certificate"


def test_https_with_a_trusted_certificate_sends_sni_and_reuses_the_connection(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trusted by this test's clients
    names: list[str] = []

    async def scenario() -> tuple[list[Outcome], RawServer]:
        server = await raw_server(answering(OK), tls=server_tls(certificate, names))
        try:
            async with HttpFirer() as firer:
                outcomes = [await firer.fire(spec(server.base + "/s"), context()) for _ in range(3)]
                return outcomes, server
        finally:
            await server.__aexit__(None, None, None)

    outcomes, server = asyncio.run(scenario())
    assert [(o.status, o.output) for o in outcomes] == [("succeeded", "ok")] * 3
    assert server.connections == 1
    assert names == []  # an IP address is not sent as SNI (RFC 6066)

    # a name is sent as SNI; the certificate does not name it
    async def by_name() -> Outcome:
        server = await raw_server(answering(OK), tls=server_tls(certificate, names))
        try:
            async with HttpFirer() as firer:
                return await firer.fire(
                    spec(server.base.replace("127.0.0.1", "localhost")), context()
                )
        finally:
            await server.__aexit__(None, None, None)

    outcome = asyncio.run(by_name())
    assert names == ["localhost"]
    assert outcome.error is not None and outcome.error.startswith(
        "TLS certificate error for localhost: "
    )


def test_a_plain_server_behind_https_is_a_tls_error() -> None:
    def make_server(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

        return handle

    async def plain() -> tuple[list[Any], str]:
        server = await raw_server(make_server)
        return [server], server.base.replace("http:", "https:")

    ours = assert_same(fire_both(plain, lambda base: spec(base + "/")), heads=False)
    assert ours.error is not None and ours.error.startswith("TLS error connecting to 127.0.0.1:")


# ------------------------------------------------------------------------ the client alone


def test_timeouts_of_requests_in_flight_together() -> None:
    """Requests given the same timeout, answered out of order: each slow one times out at its
    own moment (not before, not long after), the quick ones behind it are answered, a request
    cancelled from outside is cancelled (not timed out), and the task can go on afterwards."""

    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (head := await server.read_request(reader))[0]:
                if b"/slow" in head[0]:
                    await asyncio.sleep(5)
                writer.write(OK)
                await writer.drain()

        return handle

    async def timed(client: HttpClient, url: str, timeout: float) -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await client.request("GET", url, {}, None, timeout=timeout)
        except TimeoutError:
            result = "timed out"
        else:
            result = "answered"
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        return result, loop.time() - started

    async def scenario() -> tuple[list[tuple[str, float]], str]:
        server = await raw_server(make)
        client = HttpClient(16)
        try:
            jobs = []
            for k in range(6):
                path = "/slow" if k % 2 == 0 else "/quick"
                jobs.append(asyncio.create_task(timed(client, server.base + path, 0.3 + k % 2)))
                await asyncio.sleep(0.02)
            outside = asyncio.create_task(timed(client, server.base + "/slow", 0.3))
            await asyncio.sleep(0.1)
            outside.cancel()
            try:
                await outside
                stopped = "went on"
            except asyncio.CancelledError:
                stopped = "cancelled"
            results = list(await asyncio.gather(*jobs))
            results.append(await timed(client, server.base + "/quick", 0.3))
            return results, stopped
        finally:
            await client.close()
            await server.__aexit__(None, None, None)

    results, stopped = asyncio.run(scenario())
    assert stopped == "cancelled"
    assert [result for result, _ in results] == ["timed out", "answered"] * 3 + ["answered"]
    for result, seconds in results:
        if result == "timed out":
            assert 0.29 <= seconds < 1.5


def test_the_client_alone_counts_what_it_does_not_keep() -> None:
    async def scenario() -> tuple[bytes, int]:
        body = b"z" * 50_000
        response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        server = await raw_server(answering(response))
        client = HttpClient(4)
        try:
            got = await client.request("GET", server.base + "/", {}, None, timeout=5, keep=100)
            return got.body, got.size
        finally:
            await client.close()
            await server.__aexit__(None, None, None)

    kept, size = asyncio.run(scenario())
    assert (kept, size) == (b"z" * 101, 50_000)


# --------------------------------------------------------------------- a hostile server


@pytest.mark.parametrize(
    "response",
    [
        "HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\nok".encode(),
        "HTTP/1.1 200 OK\r\nContent-Length: \u0662\r\n\r\nok".encode(),
        "HTTP/1.1 \u00b200 OK\r\nContent-Length: 2\r\n\r\nok".encode(),
        "HTTP/1.1 \u0662\u0660\u0660 OK\r\nContent-Length: 2\r\n\r\nok".encode(),
    ],
    ids=["superscript-length", "arabic-length", "superscript-status", "arabic-status"],
)
def test_digits_that_are_not_ascii_are_a_bad_response_not_a_traceback(
    response: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """str.isdigit() takes '²' (int() then raises inside data_received: asyncio logged a
    traceback and the fire said the server closed the connection) and '٢' (int() reads 2)."""
    results = fire_both(one_raw(response, then_close=True), lambda base: spec(base + "/"))
    for outcome, _ in results:
        assert outcome.status == "failed"
        assert outcome.error is not None and outcome.error.startswith("bad response: ")
    assert not [r for r in caplog.records if "data_received" in r.getMessage()]


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 10\r\n\r\nokxxxxxxxx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["conflicting", "repeated"],
)
def test_a_response_with_two_content_lengths_is_refused_as_aiohttp_refused_it(
    response: bytes,
) -> None:
    """Which one frames the body is anybody's guess (RFC 9112 6.3): the first was taken."""
    results = fire_both(one_raw(response, then_close=True), lambda base: spec(base + "/"))
    for outcome, _ in results:
        assert outcome.status == "failed"
        assert outcome.error is not None
        assert outcome.error.startswith("bad response: Duplicate Content-Length")


def test_transfer_encoding_lines_are_one_list_whose_last_coding_frames_the_body() -> None:
    """`Transfer-Encoding: chunked` then `Transfer-Encoding: gzip` is `chunked, gzip`: not
    chunked last, so the body runs to the close (RFC 9112 6.3), as aiohttp read it; only the
    first line was looked at."""
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    ours = assert_same(fire_both(one_raw(response, then_close=True), lambda b: spec(b + "/")))
    assert ours.output == "2\r\nok\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "size",
    [b"0x2", b" 2", b"+2", b"2 2", b"1" + b"0" * 16],
    ids=["0x", "space", "plus", "two", "17-digits"],
)
def test_a_chunk_size_is_hex_digits_only(size: bytes) -> None:
    """int(..., 16) takes '0x2', ' 2' and '+2'; a size past 16 hex digits can only be a
    server's mistake (aiohttp said 'Chunk size overflow'), not a body to read for the whole
    timeout."""
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nok\r\n0\r\n\r\n" % size
    results = fire_both(one_raw(response), lambda base: spec(base + "/"), timeout=30)
    for outcome, _ in results:
        assert outcome.status == "failed", outcome.error
        assert outcome.error is not None and outcome.error.startswith("bad response: ")
        assert outcome.duration_ms < 10_000


def test_a_request_that_asks_connection_close_is_not_followed_on_its_connection() -> None:
    """A job with `Connection: close` among its headers: the server answers and closes when
    it likes (this one reads what else comes on that connection and drops it unanswered).
    Its connection was kept, the next POST sent on it failed: every other fire."""

    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head, _ = await server.read_request(reader)
            writer.write(OK)
            await writer.drain()
            if b"connection: close" not in head.lower():
                return
            await server.read_request(reader)  # a request after 'close': dropped

        return handle

    async def scenario() -> tuple[list[Outcome], RawServer]:
        server = await raw_server(make)
        try:
            async with HttpFirer() as firer:
                job = spec(server.base + "/", method="POST", headers={"Connection": "close"})
                return [await firer.fire(job, context()) for _ in range(4)], server
        finally:
            await server.__aexit__(None, None, None)

    outcomes, server = asyncio.run(scenario())
    assert [o.status for o in outcomes] == ["succeeded"] * 4, [o.error for o in outcomes]
    assert (server.connections, len(server.heads)) == (4, 4)


def test_closing_the_client_fails_a_response_in_flight_rather_than_cutting_it_short() -> None:
    """A body read to the close, the client closed halfway: its connection_lost looked like
    the server's close, and the half body came back as the whole response."""

    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nthe first half")
            await writer.drain()
            await server.read_request(reader)  # until the client closes

        return handle

    async def scenario() -> tuple[BaseException | None, RawServer]:
        server = await raw_server(make)
        client = HttpClient(4)
        try:
            task = asyncio.ensure_future(
                client.request("GET", server.base + "/", {}, None, timeout=30)
            )
            # the head is in and the body being read (to the close)
            await _until(
                lambda: any(c._reading and c._reading.mode == "close" for c in client._busy)
            )
            await client.close()
            try:
                await task
            except http_client.ClientError as exc:
                return exc, server
            return None, server
        finally:
            await server.__aexit__(None, None, None)

    error, _ = asyncio.run(scenario())
    assert isinstance(error, http_client.ClientError)
    assert describe_error(error) == "request failed: the HTTP client was closed"


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\nok",
        b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\tc\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["lf-only", "lf-end", "lf-status-line", "obs-fold"],
)
def test_lenient_heads_aiohttp_read_are_read_the_same(response: bytes) -> None:
    """Lines ended by a bare LF (printf 'HTTP/1.1 200 OK\\n\\n' behind netcat, old devices)
    and folded header lines: aiohttp read them (RFC 9112 2.2 and 5.2 let a client); the head
    of the first kind was never found (the fire timed out), the others were bad responses."""
    ours = assert_same(
        fire_both(one_raw(response), lambda base: spec(base + "/"), timeout=5), heads=False
    )
    assert (ours.status, ours.output) == ("succeeded", "ok"), ours.error


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nX-Shown: fine\rStatus: spoofed\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-Shown: a\x00b\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["bare-cr", "nul", "cr-in-reason"],
)
def test_a_bare_cr_or_a_nul_in_a_head_is_a_bad_response_as_with_aiohttp(response: bytes) -> None:
    """They were kept in the stored headers and reason (a bare CR rewrites the line it is
    shown on: `runs show` could be made to print what the server liked)."""
    for outcome, _ in fire_both(one_raw(response), lambda base: spec(base + "/")):
        assert outcome.status == "failed"
        assert outcome.error is not None and outcome.error.startswith("bad response: ")
        assert "\r" not in outcome.error and "\x00" not in outcome.error


def test_closing_the_client_fails_the_requests_waiting_for_a_connection() -> None:
    """A request waiting for one of max_connections when the client closed got a
    CancelledError its task was never sent: the fire said 'interrupted' as if stopped."""

    def make(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            await server.read_request(reader)  # never answered: until the client closes

        return handle

    async def scenario() -> list[BaseException | None]:
        server = await raw_server(make)
        client = HttpClient(1)
        try:
            tasks = [
                asyncio.ensure_future(
                    client.request("GET", server.base + "/", {}, None, timeout=30)
                )
                for _ in range(2)
            ]
            await _until(lambda: len(server.heads) == 1 and len(client._waiters) == 1)
            await client.close()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            return [result if isinstance(result, BaseException) else None for result in done]
        finally:
            await server.__aexit__(None, None, None)

    errors = asyncio.run(scenario())
    assert [type(error) for error in errors] == [http_client.ClientError] * 2
    assert [str(error) for error in errors] == ["the HTTP client was closed"] * 2


def test_a_gzip_bomb_is_counted_in_bounded_memory() -> None:
    """64 MiB of zeros in 64 KiB of gzip: the body is counted to its end decompressed, but
    no more than the cap and a 1 MiB piece is ever held (tracemalloc's peak)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(packer.compress(bytes(1 << 20)) for _ in range(64)) + packer.flush()
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    response = head % len(bomb) + bomb

    async def scenario() -> tuple[int, int, int]:
        server = await raw_server(answering(response))
        client = HttpClient(4)
        try:
            tracemalloc.start()
            got = await client.request("GET", server.base + "/", {}, None, timeout=60)
            peak = tracemalloc.get_traced_memory()[1]
            return len(got.body), got.size, peak
        finally:
            tracemalloc.stop()
            await client.close()
            await server.__aexit__(None, None, None)

    kept, size, peak = asyncio.run(scenario())
    assert (kept, size) == (64 * 1024 + 1, 64 << 20)
    assert peak < 8 << 20, peak
