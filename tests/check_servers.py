"""A local aiohttp server for HTTP checks, on 127.0.0.1 in a thread of its own: JSON, HTML,
slow answers, redirects and a huge body generated as it is sent."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

DOCUMENT = {"status": {"ok": True, "version": 3}, "items": [{"state": "ready"}, {"state": "new"}]}
HTML = "<html><head><title>Welcome home</title></head><body>all systems go</body></html>"
CHUNK = b"z" * (1024 * 1024)


async def _json(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


async def _html(request: web.Request) -> web.Response:
    return web.Response(
        text=HTML,
        content_type="text/html",
        headers={"X-Version": "1.2.3", "Cache-Control": "no-store"},
    )


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(text="finally")


async def _redirect(request: web.Request) -> web.Response:
    left = int(request.match_info["left"])
    if left == 0:
        return web.Response(text="arrived")
    raise web.HTTPFound(f"/redirect/{left - 1}")


async def _huge(request: web.Request) -> web.StreamResponse:
    """`megabytes` MiB, chunked (no Content-Length): the size is known only at the end."""
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(int(request.match_info["megabytes"])):
        await response.write(CHUNK)
    await response.write_eof()
    return response


async def _text(request: web.Request) -> web.Response:
    return web.Response(text=request.query.get("say", ""))


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/json", _json)
    app.router.add_get("/html", _html)
    app.router.add_get("/slow/{ms}", _slow)
    app.router.add_get("/redirect/{left}", _redirect)
    app.router.add_get("/huge/{megabytes}", _huge)
    app.router.add_get("/text", _text)
    return app


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl), as files."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@contextmanager
def check_server(certificate: tuple[Path, Path] | None = None) -> Iterator[str]:
    """The server's base URL (http://127.0.0.1:PORT, https with `certificate`: its cert and
    key files) while the block runs."""
    tls = None
    if certificate is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*certificate)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    address: list[str] = []
    runner = web.AppRunner(_app(), access_log=None, shutdown_timeout=1.0)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        scheme = "https" if tls else "http"
        address.append(f"{scheme}://127.0.0.1:{runner.addresses[0][1]}")
        ready.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the check server did not start"
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


__all__ = ["DOCUMENT", "HTML", "check_server", "make_certificate"]
