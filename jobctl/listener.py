"""The daemon's HTTP listener (aiohttp's server, in the daemon's own event loop).

POST /hooks/NAME starts a run, GET /healthz says whether the loop is alive, GET /metrics
serves Prometheus text. Handlers only queue work; firing stays with the tick loop. The
listener sees its host only through `ListenerHost` (the daemon implements it).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from aiohttp import web

from jobctl import hooks
from jobctl.errors import InvalidInput, NotFound
from jobctl.timeutil import iso_z

log = logging.getLogger("jobctl.daemon")

MAX_BODY = 1024 * 1024
READ_TIMEOUT = 10.0
STUCK_AFTER = 10.0  # seconds without a loop iteration before /healthz answers 503

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, or just `PORT` for 127.0.0.1 (port 0 picks a free one)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(f"invalid --listen {text!r}: use HOST:PORT or PORT, like 8787")
    return host, int(port)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)

    def observe(self, job: str, value: float) -> None:
        counts = self.counts.setdefault(job, [0] * (len(self.buckets) + 1))
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                counts[index] += 1
        counts[-1] += 1
        self.sums[job] = self.sums.get(job, 0.0) + value

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for job, counts in sorted(self.counts.items()):
            label = _label(job)
            for bound, count in zip(self.buckets, counts, strict=False):
                lines.append(f'{name}_bucket{{job="{label}",le="{bound}"}} {count}')
            lines.append(f'{name}_bucket{{job="{label}",le="+Inf"}} {counts[-1]}')
            lines.append(f'{name}_sum{{job="{label}"}} {self.sums[job]:.6f}')
            lines.append(f'{name}_count{{job="{label}"}} {counts[-1]}')
        return lines


@dataclass
class Metrics:
    """What the daemon counts since it started, for /metrics."""

    runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    lateness: Histogram = field(default_factory=lambda: Histogram(LATENESS_BUCKETS))
    webhooks: Counter[str] = field(default_factory=Counter)

    def record(self, job: str, status: str, duration: float, lateness: float) -> None:
        self.runs[(job, status)] += 1
        self.duration.observe(job, duration)
        self.lateness.observe(job, max(0.0, lateness))


@dataclass(frozen=True)
class Health:
    """How the loop is doing, for /healthz."""

    last_loop_monotonic: float  # time.monotonic() at the loop's last iteration
    last_tick_at: datetime  # the wall clock then
    write_trouble: str | None  # why the database cannot be written now, if it cannot


@dataclass(frozen=True)
class Gauges:
    """The host's state now, for /metrics."""

    started_at: datetime
    ticks: int  # scheduling steps taken
    in_flight: int  # runs executing
    jobs_by_state: Mapping[str, int]
    last_successes: Sequence[tuple[str, datetime]]  # (job, when it last succeeded), by name


class ListenerHost(Protocol):
    """What the listener needs of the process it serves (jobctl.daemon.Daemon has it)."""

    @property
    def metrics(self) -> Metrics: ...

    def webhook_secret(self, name: str) -> str | None:
        """The secret of job `name`'s webhook; None for no such job or no webhook."""
        ...

    def accept_webhook(
        self, name: str, payload: str, payload_type: str | None, replay_keys: Sequence[str]
    ) -> tuple[int | None, str]:
        """Queue a run of job `name`: (run id, status); raises NotFound."""
        ...

    def health(self) -> Health: ...

    def gauges(self) -> Gauges: ...


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond loopback


class Listener:
    def __init__(
        self, host_process: ListenerHost, host: str, port: int, *, metrics_token: str | None = None
    ) -> None:
        self.host_process = host_process
        self.host = host
        self.port = port
        self.metrics_token = metrics_token
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


def render_metrics(metrics: Metrics, gauges: Gauges) -> str:
    """Prometheus text format: counters, histograms and gauges of this daemon and its jobs."""
    lines = [
        "# HELP jobctl_runs_total Runs finished since the daemon started, by job and status.",
        "# TYPE jobctl_runs_total counter",
    ]
    for (job, status), count in sorted(metrics.runs.items()):
        lines.append(f'jobctl_runs_total{{job="{_label(job)}",status="{status}"}} {count}')
    lines += metrics.duration.render("jobctl_run_duration_seconds", "How long runs took.")
    lines += metrics.lateness.render(
        "jobctl_fire_lateness_seconds", "Start time minus scheduled time."
    )
    lines += [
        "# HELP jobctl_runs_in_flight Runs executing now.",
        "# TYPE jobctl_runs_in_flight gauge",
        f"jobctl_runs_in_flight {gauges.in_flight}",
    ]
    lines += ["# HELP jobctl_jobs Jobs by state.", "# TYPE jobctl_jobs gauge"]
    states = dict.fromkeys(("enabled", "paused", "completed"), 0)
    states.update(gauges.jobs_by_state)
    lines += [f'jobctl_jobs{{state="{state}"}} {count}' for state, count in states.items()]
    lines += [
        "# HELP jobctl_last_success_timestamp_seconds When each job last succeeded.",
        "# TYPE jobctl_last_success_timestamp_seconds gauge",
    ]
    for name, when in gauges.last_successes:
        lines.append(
            f'jobctl_last_success_timestamp_seconds{{job="{_label(name)}"}} {when.timestamp():.3f}'
        )
    lines += [
        "# HELP jobctl_webhook_requests_total Webhook calls by outcome.",
        "# TYPE jobctl_webhook_requests_total counter",
    ]
    lines += [
        f'jobctl_webhook_requests_total{{outcome="{outcome}"}} {count}'
        for outcome, count in sorted(metrics.webhooks.items())
    ]
    lines += [
        "# HELP jobctl_daemon_start_timestamp_seconds When the daemon started.",
        "# TYPE jobctl_daemon_start_timestamp_seconds gauge",
        f"jobctl_daemon_start_timestamp_seconds {gauges.started_at.timestamp():.3f}",
        "# HELP jobctl_ticks_total Scheduling steps taken.",
        "# TYPE jobctl_ticks_total counter",
        f"jobctl_ticks_total {gauges.ticks}",
    ]
    return "\n".join(lines) + "\n"
