"""The daemon's HTTP listener (aiohttp's server, in the daemon's own event loop).

POST /hooks/NAME starts a run, GET /healthz says whether the loop is alive, GET /metrics
serves Prometheus text (counted and rendered by jobctl.metrics). Handlers only queue work; firing stays with the tick loop. The
listener sees its host only through `ListenerHost` (the daemon implements it).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from jobctl import hooks
from jobctl.errors import InvalidInput, NotFound
from jobctl.listener_host import ListenerHost
from jobctl.metrics import render_metrics
from jobctl.timeutil import iso_z

if TYPE_CHECKING:
    from jobctl.web.context import WebContext

log = logging.getLogger("jobctl.daemon")

MAX_BODY = 1024 * 1024
READ_TIMEOUT = 10.0
STUCK_AFTER = 10.0  # seconds without a loop iteration before /healthz answers 503


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, or just `PORT` for 127.0.0.1 (port 0 picks a free one)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(f"invalid --listen {text!r}: use HOST:PORT or PORT, like 8787")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond loopback


class Listener:
    def __init__(
        self,
        host_process: ListenerHost,
        host: str,
        port: int,
        *,
        metrics_token: str | None = None,
        web_context: WebContext | None = None,
    ) -> None:
        """`web_context` mounts the API and the dashboard (jobctl.web) beside the hooks."""
        self.host_process = host_process
        self.host = host
        self.port = port
        self.metrics_token = metrics_token
        self.web_context = web_context
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(hooks.PATH_PREFIX + "{name}", self.webhook)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        if self.web_context is not None:
            from jobctl.web.app import install

            install(app, self.web_context)
        from jobctl.bad_requests import BadRequestLog

        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=15,
            handler_cancellation=True,
            logger=BadRequestLog(log),  # a malformed request costs a line, not a traceback
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=2)
        try:
            await site.start()
        except OSError as exc:
            from jobctl.service import cannot_listen

            await self._runner.cleanup()
            raise cannot_listen(self.host, self.port, exc) from None
        if self.port == 0 and self._runner.addresses:  # the port the system picked
            self.port = int(self._runner.addresses[0][1])
        log.info("listening on %s", self.url)
        if self.web_context is not None:
            self.web_context.listen_url = self.url
        if self.web_context is not None and not is_loopback(self.host):
            log.warning(
                "the API and the dashboard are served over plain HTTP beyond loopback on %s: "
                "put TLS in front (a reverse proxy with https)",
                self.url,
            )
        if self.metrics_token is None and not is_loopback(self.host):
            log.warning(
                "listening beyond loopback without --metrics-token-env: /metrics answers 401"
            )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ----------------------------------------------------------------------- handlers

    async def webhook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _json({"error": "request body too large (1 MiB at most)"}, 413)
        try:
            body = await asyncio.wait_for(request.read(), READ_TIMEOUT)
        except web.HTTPRequestEntityTooLarge:
            return _json({"error": "request body too large (1 MiB at most)"}, 413)
        except TimeoutError:
            return _json({"error": "request body not received in time"}, 408)
        if not _is_text(name, *(request.headers.get(h, "") for h in hooks.CREDENTIAL_HEADERS)):
            # aiohttp hands on bytes that are not UTF-8 as lone surrogates: no secret has them.
            log.warning("webhook %s: refused credentials that are not UTF-8 text", _printable(name))
            self.host_process.metrics.webhooks["unauthorized"] += 1
            return _json({"error": "unauthorized"}, 401)
        secret = self.host_process.webhook_secret(name)
        if not hooks.authenticate(secret, request.headers, body):
            # The same answer for an unknown job: names are not disclosed.
            self.host_process.metrics.webhooks["unauthorized"] += 1
            return _json({"error": "unauthorized"}, 401)
        try:
            keys = hooks.replay_keys(request.headers)
        except InvalidInput as exc:
            self.host_process.metrics.webhooks["invalid"] += 1
            return _json({"error": str(exc)}, 400)
        try:
            run_id, status = self.host_process.accept_webhook(
                name, body.decode("utf-8", "replace"), _content_type(request), keys
            )
        except NotFound:
            return _json({"error": "unauthorized"}, 401)
        self.host_process.metrics.webhooks[status] += 1
        if status == "paused":
            return _json({"error": f"job {name} is paused"}, 409)
        if status == "duplicate":
            return _json({"job": name, "run": run_id, "duplicate": True}, 200)
        return _json({"job": name, "run": run_id, "status": status}, 202)

    async def healthz(self, request: web.Request) -> web.Response:
        health = self.host_process.health()
        age = time.monotonic() - health.last_loop_monotonic
        trouble = health.write_trouble
        status = "stuck" if age >= STUCK_AFTER else "cannot write" if trouble else "ok"
        body = {
            "status": status,
            "last_tick_at": iso_z(health.last_tick_at),
            "seconds_since_tick": round(age, 3),
            "problem": trouble,
        }
        return _json(body, 200 if status == "ok" else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        if not self._may_read_metrics(request):
            return web.Response(
                text="unauthorized\n",
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="jobctl"'},
            )
        return web.Response(
            text=render_metrics(self.host_process.metrics, self.host_process.gauges()),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    def _may_read_metrics(self, request: web.Request) -> bool:
        """With a token, only its bearer; without one, anyone on loopback and nobody beyond."""
        if self.metrics_token is None:
            return is_loopback(self.host)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        given_bytes = given.strip().encode("utf-8", "surrogateescape")
        return hmac.compare_digest(
            given_bytes, self.metrics_token.encode("utf-8", "surrogateescape")
        )


def _content_type(request: web.Request) -> str | None:
    """The caller's Content-Type as sent (parameters and all), when it is sane to pass on."""
    value = request.headers.get("Content-Type", "").strip()
    if not value or len(value) > 255 or not value.isascii() or not value.isprintable():
        return None
    return value


def _is_text(*values: str) -> bool:
    """False when a value carries bytes that were not UTF-8 (decoded as lone surrogates)."""
    try:
        for value in values:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(value: str) -> str:
    """A value from a request, safe to log: undecodable bytes shown as U+FFFD."""
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return ascii(text)[1:-1] if not text.isprintable() else text


def _json(body: Mapping[str, object], status: int) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")
