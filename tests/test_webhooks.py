"""Webhooks in, notifications out, chains and metrics: a real daemon and real HTTP clients."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import BOTH_STORES, Invoke, dump_database
from tests.realparts import (
    DaemonProcess,
    Reply,
    Sink,
    job_runs,
    query,
    wait_until,
)


@pytest.fixture
def listening(db_path: Path, jobctl: Invoke) -> Iterator[Any]:
    """Start a listening daemon after the test has set up its jobs; yields its base URL."""
    started: list[DaemonProcess] = []

    def start() -> str:
        daemon = DaemonProcess(db_path, "--listen", "127.0.0.1:0")
        started.append(daemon)
        daemon.wait_ready()
        row = wait_until(
            lambda: query(db_path, "SELECT listen FROM daemon WHERE listen IS NOT NULL"),
            what="the listener",
        )
        return str(row[0][0])

    yield start
    for daemon in started:
        assert daemon.stop() == 0, daemon.log()


def post(
    url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def enable_hook(jobctl: Invoke, name: str) -> str:
    result = jobctl("hook", "enable", name, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["job"] == name and len(data["secret"]) >= 32
    return str(data["secret"])


@BOTH_STORES
def test_webhook_with_bearer_and_with_github_signature(
    jobctl: Invoke, db_path: Path, sink: Sink, listening: Any
) -> None:
    jobctl(
        "add",
        "deploy",
        "--url",
        f"{sink.url}/deploy",
        "--manual",
        "--forward-payload",
        "--overlap",
        "queue",
    )
    secret = enable_hook(jobctl, "deploy")
    base = listening()
    status, body = post(
        f"{base}/hooks/deploy", b'{"ref": "main"}', {"Authorization": f"Bearer {secret}"}
    )
    assert status == 202 and body["job"] == "deploy" and isinstance(body["run"], int)
    payload = b'{"ref": "release"}'
    signature = "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    status, second = post(
        f"{base}/hooks/deploy",
        payload,
        {"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
    )
    assert status == 202
    wait_until(lambda: len(sink.requests_to("/deploy")) == 2, what="both runs")
    bodies = sorted(r.body for r in sink.requests_to("/deploy"))
    assert bodies == [b'{"ref": "main"}', b'{"ref": "release"}']
    rows = {r["id"]: r for r in job_runs(db_path, "deploy")}
    assert {rows[body["run"]]["trigger"], rows[second["run"]]["trigger"]} == {"webhook"}
    assert jobctl("hook", "show", "deploy").stdout.strip() == f"{base}/hooks/deploy"
    assert secret not in jobctl("hook", "show", "deploy").stdout
    assert secret not in jobctl("show", "deploy", "--json").stdout


@BOTH_STORES
def test_webhook_refusals(jobctl: Invoke, db_path: Path, sink: Sink, listening: Any) -> None:
    jobctl("add", "open", "--url", f"{sink.url}/open", "--manual")
    jobctl("add", "asleep", "--url", f"{sink.url}/asleep", "--manual", "--paused")
    jobctl("add", "nohook", "--url", f"{sink.url}/nohook", "--manual")
    secret = enable_hook(jobctl, "open")
    sleepy = enable_hook(jobctl, "asleep")
    base = listening()
    wrong = post(f"{base}/hooks/open", b"x", {"Authorization": "Bearer wrong"})
    missing = post(f"{base}/hooks/open", b"x")
    unknown = post(f"{base}/hooks/ghost", b"x", {"Authorization": f"Bearer {secret}"})
    no_hook = post(f"{base}/hooks/nohook", b"x", {"Authorization": f"Bearer {secret}"})
    assert wrong == missing == unknown == no_hook == (401, {"error": "unauthorized"})
    bad_signature = post(f"{base}/hooks/open", b"x", {"X-Hub-Signature-256": "sha256=00"})
    assert bad_signature[0] == 401
    too_big = post(
        f"{base}/hooks/open", b"x" * (1024 * 1024 + 1), {"Authorization": f"Bearer {secret}"}
    )
    assert too_big[0] == 413
    paused = post(f"{base}/hooks/asleep", b"x", {"Authorization": f"Bearer {sleepy}"})
    assert paused[0] == 409
    jobctl("hook", "rotate", "open")
    assert post(f"{base}/hooks/open", b"x", {"Authorization": f"Bearer {secret}"})[0] == 401
    assert query(db_path, "SELECT count(*) FROM runs")[0][0] == 0
    assert sink.received == []


@BOTH_STORES
def test_notifications_on_failure_and_auto_pause(
    jobctl: Invoke, db_path: Path, sink: Sink, listening: Any
) -> None:
    sink.replies["/fails"] = Reply(status=500)
    jobctl(
        "add",
        "flaky",
        "--url",
        f"{sink.url}/fails",
        "--every",
        "1s",
        "--max-failures",
        "2",
        "--notify-on",
        "failure",
        f"{sink.url}/notify",
    )
    listening()
    notes = wait_until(
        lambda: (
            [json.loads(r.body) for r in sink.requests_to("/notify")]
            if len(sink.requests_to("/notify")) >= 3
            else None
        ),
        what="two failure notices and a pause notice",
    )
    failures = [n for n in notes if n.get("status") == "failed"]
    assert failures and failures[0]["job"] == "flaky" and "HTTP 500" in failures[0]["text"]
    assert failures[0]["text"] == failures[0]["content"]
    assert any(n.get("event") == "auto_paused" for n in notes)
    job = query(db_path, "SELECT state, paused_reason FROM jobs")[0]
    assert job["state"] == "paused"
    run = wait_until(
        lambda: [
            r
            for r in job_runs(db_path, "flaky")
            if r["details"] and "notifications" in r["details"]
        ]
    )[0]
    assert json.loads(run["details"])["notifications"][0]["ok"] is True


def test_dead_man_alert(jobctl: Invoke, db_path: Path, sink: Sink, listening: Any) -> None:
    jobctl(
        "add",
        "silent",
        "--url",
        f"{sink.url}/x",
        "--manual",
        "--alert-if-no-success",
        "1s",
        "--notify-on",
        "failure",
        f"{sink.url}/alerts",
    )
    listening()
    alert = wait_until(lambda: sink.requests_to("/alerts"), timeout=30, what="the alert")[0]
    data = json.loads(alert.body)
    assert data["event"] == "no_success" and data["job"] == "silent"
    assert "has not succeeded" in data["text"]


@BOTH_STORES
def test_chains_run_after_success_or_failure(
    jobctl: Invoke, db_path: Path, sink: Sink, listening: Any
) -> None:
    sink.replies["/bad"] = Reply(status=503)
    jobctl("add", "build", "--url", f"{sink.url}/good", "--manual")
    jobctl("add", "broken", "--url", f"{sink.url}/bad", "--manual")
    jobctl("add", "deploy", "--url", f"{sink.url}/deploy", "--manual", "--after", "build")
    jobctl(
        "add",
        "cleanup",
        "--url",
        f"{sink.url}/cleanup",
        "--manual",
        "--after",
        "broken:failed",
        "--after",
        "build:failed",
    )
    cycle = jobctl("edit", "build", "--after", "deploy")
    assert cycle.exit_code == 2 and "cycle" in cycle.stderr
    assert jobctl("edit", "build", "--after", "build").exit_code == 2
    assert jobctl("edit", "build", "--after", "nope").exit_code == 3
    listening()
    for name in ("build", "broken"):
        assert jobctl("run", name, "--queue").exit_code == 0
    wait_until(
        lambda: sink.requests_to("/deploy") and sink.requests_to("/cleanup"),
        what="the chained runs",
    )
    deploy = [r for r in job_runs(db_path, "deploy") if r["trigger"] == "chain"]
    build = job_runs(db_path, "build")
    assert len(deploy) == 1 and deploy[0]["caused_by"] == build[0]["id"]
    cleanup = [r for r in job_runs(db_path, "cleanup") if r["trigger"] == "chain"]
    assert len(cleanup) == 1
    assert json.loads(jobctl("show", "cleanup", "--json").stdout)["after"] == [
        "broken:failed",
        "build:failed",
    ]


@BOTH_STORES
def test_healthz_and_metrics_match_the_runs(
    jobctl: Invoke, db_path: Path, sink: Sink, listening: Any
) -> None:
    sink.replies["/no"] = Reply(status=500)
    jobctl("add", "yes", "--url", f"{sink.url}/yes", "--every", "1s")
    jobctl("add", "no", "--url", f"{sink.url}/no", "--every", "1s")
    base = listening()
    wait_until(lambda: len(sink.requests_to("/no")) >= 2, what="some runs")
    status, text = get(f"{base}/healthz")
    assert status == 200 and json.loads(text)["status"] == "ok"
    status, text = get(f"{base}/metrics")
    assert status == 200
    samples = _parse_prometheus(text)
    # Every series names the daemon it is from (its fleet id), one and the same.
    daemons = {dict(labels).get("daemon") for _, labels in samples}
    [daemon] = daemons
    assert daemon and len(daemon) == 16
    samples = {
        (name, tuple(pair for pair in labels if pair[0] != "daemon")): value
        for (name, labels), value in samples.items()
    }
    succeeded = samples[("jobctl_runs_total", (("job", "yes"), ("status", "succeeded")))]
    failed = samples[("jobctl_runs_total", (("job", "no"), ("status", "failed")))]
    recorded = {row["name"]: row for row in query(db_path, "SELECT * FROM jobs")}
    # The metrics are read a moment after the runs: the database may be one fire ahead.
    assert 1 <= succeeded <= recorded["yes"]["runs_succeeded"]
    assert 1 <= failed <= recorded["no"]["runs_failed"]
    assert samples[("jobctl_jobs", (("state", "enabled"),))] == 2
    assert ("jobctl_run_duration_seconds_count", (("job", "yes"),)) in samples
    assert ("jobctl_fire_lateness_seconds_bucket", (("job", "yes"), ("le", "+Inf"))) in samples
    assert samples[("jobctl_ticks_total", ())] > 0
    assert ("jobctl_last_success_timestamp_seconds", (("job", "yes"),)) in samples


def _parse_prometheus(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        metric, value = line.rsplit(" ", 1)
        name, _, labels = metric.partition("{")
        pairs = tuple(
            (key, val.strip('"'))
            for key, val in (item.split("=", 1) for item in labels.rstrip("}").split(",") if item)
        )
        samples[(name, pairs)] = float(value)
    return samples


def test_burst_of_webhooks_while_jobs_fire(
    jobctl: Invoke, db_path: Path, sink: Sink, listening: Any
) -> None:
    jobctl("add", "hooked", "--url", f"{sink.url}/hooked", "--manual", "--overlap", "allow")
    jobctl("add", "steady", "--url", f"{sink.url}/steady", "--every", "1s")
    secret = enable_hook(jobctl, "hooked")
    base = listening()
    wait_until(lambda: sink.requests_to("/steady"), what="the steady job")

    async def burst() -> list[dict[str, Any]]:
        limit = asyncio.Semaphore(50)
        async with aiohttp.ClientSession() as session:

            async def call(index: int) -> dict[str, Any]:
                async with (
                    limit,
                    session.post(
                        f"{base}/hooks/hooked",
                        data=str(index),
                        headers={"Authorization": f"Bearer {secret}"},
                    ) as response,
                ):
                    assert response.status == 202
                    return dict(await response.json())

            return await asyncio.gather(*(call(i) for i in range(1000)))

    answers = asyncio.run(burst())
    run_ids = [answer["run"] for answer in answers]
    assert len(set(run_ids)) == 1000
    wait_until(
        lambda: len(sink.requests_to("/hooked")) >= 1000,
        timeout=60,
        what="every accepted call to fire",
    )
    rows = [r for r in job_runs(db_path, "hooked")]
    assert sorted(r["id"] for r in rows) == sorted(run_ids)
    assert {r["trigger"] for r in rows} == {"webhook"}
    fired = sorted(int(r.headers["X-Jobctl-Run"]) for r in sink.requests_to("/hooked"))
    assert fired == sorted(run_ids)  # exactly one fire per accepted call
    steady = [r for r in job_runs(db_path, "steady") if r["trigger"] == "schedule"]
    late = [r for r in steady if r["started_at"] and r["started_at"][:19] > r["scheduled_for"][:19]]
    assert len(late) <= 1, "scheduled fires stay on time (to the second) during the burst"


def test_hook_show_and_disable_without_a_webhook_exit_3(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "plain", "--url", "http://127.0.0.1:9/x", "--manual")
    for command in ("show", "disable", "rotate"):
        result = jobctl("hook", command, "plain")
        assert result.exit_code == 3, (command, result.stderr)
        assert result.stderr.startswith("jobctl: ") and "has no webhook" in result.stderr
        assert result.stderr.count("\n") == 1
    assert jobctl("hook", "show", "ghost").exit_code == 3
    assert jobctl("hook", "disable", "ghost").exit_code == 3
    assert jobctl("hook", "rotate", "ghost").exit_code == 3


def test_hook_base_url_must_be_http_with_a_host(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "base", "--url", "http://127.0.0.1:9/x", "--manual")
    before = dump_database(db_path)
    for bad in (
        "javascript:alert(1)",
        "ftp://host/",
        "https://",
        "jobs.example.com",
        "http://h:x/",
    ):
        for command in ("enable", "rotate", "show"):
            result = jobctl("hook", command, "base", "--base-url", bad)
            assert result.exit_code == 2, (command, bad, result.stderr)
            assert result.stderr.startswith(f"jobctl: invalid --base-url {bad!r}")
    assert dump_database(db_path) == before
    result = jobctl("hook", "enable", "base", "--base-url", "https://jobs.example.com/ci/")
    assert result.exit_code == 0, result.stderr
    assert "url:    https://jobs.example.com/ci/hooks/base" in result.stdout


def raw_post(base: str, path: bytes, headers: list[bytes], body: bytes = b"{}") -> int:
    """POST over a plain socket, so header bytes that are not UTF-8 reach the daemon as such."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: " + host.encode(), b"Connection: close"]
    lines += [*headers, b"Content-Length: " + str(len(body)).encode()]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_non_utf8_credentials_are_refused_as_unauthorized(
    jobctl: Invoke, db_path: Path, sink: Sink
) -> None:
    jobctl("add", "deploy", "--url", f"{sink.url}/deploy", "--manual")
    secret = enable_hook(jobctl, "deploy")
    daemon = DaemonProcess(db_path, "--listen", "127.0.0.1:0").wait_ready()
    try:
        base = wait_until(
            lambda: query(db_path, "SELECT listen FROM daemon WHERE listen IS NOT NULL"),
            what="the listener",
        )[0][0]
        bad = [
            (b"/hooks/deploy", [b"Authorization: Bearer \xff"]),
            (b"/hooks/deploy", [b"X-Hub-Signature-256: sha256=\xff\xfe"]),
            (b"/hooks/deploy", [b"Authorization: Bearer " + secret.encode() + b"\xff"]),
        ]
        assert [raw_post(base, path, headers) for path, headers in bad] == [401] * len(bad)
        good = [b"Authorization: Bearer " + secret.encode()]
        assert raw_post(base, b"/hooks/dep%FFloy", good) == 401  # no such job
        assert raw_post(base, b"/hooks/deploy", good) == 202  # the daemon still serves
        wait_until(lambda: sink.requests_to("/deploy"), what="the good call's run")
    finally:
        assert daemon.stop() == 0
    log = daemon.log()
    assert "Traceback" not in log and "Error handling request" not in log, log
    refusals = [line for line in log.splitlines() if "not UTF-8" in line]
    assert len(refusals) == 3, log
    assert len(job_runs(db_path, "deploy")) == 1


@BOTH_STORES
def test_replayed_github_delivery_starts_one_run(
    jobctl: Invoke, db_path: Path, sink: Sink, listening: Any
) -> None:
    jobctl("add", "deploy", "--url", f"{sink.url}/deploy", "--manual", "--overlap", "allow")
    secret = enable_hook(jobctl, "deploy")
    base = listening()
    payload = b'{"ref": "main"}'
    captured = {
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest(),
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "Content-Type": "application/json",
    }
    answers = [post(f"{base}/hooks/deploy", payload, captured) for _ in range(20)]
    status, first = answers[0]
    assert status == 202 and isinstance(first["run"], int)
    assert answers[1:] == [(200, {"job": "deploy", "run": first["run"], "duplicate": True})] * 19
    wait_until(lambda: sink.requests_to("/deploy"), what="the one run")
    assert [r["id"] for r in job_runs(db_path, "deploy")] == [first["run"]]

    # Two copies at once: still one run. Without any key, every call is a new run.
    async def at_once(headers: dict[str, str], copies: int) -> list[tuple[int, Any]]:
        async with aiohttp.ClientSession() as session:

            async def call() -> tuple[int, Any]:
                url = f"{base}/hooks/deploy"
                async with session.post(url, data=b"x", headers=headers) as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(call() for _ in range(copies)))

    bearer = {"Authorization": f"Bearer {secret}"}
    keyed = asyncio.run(at_once({**bearer, "Idempotency-Key": "order-7"}, 10))
    assert sorted(status for status, _ in keyed) == [200] * 9 + [202]
    assert len({body["run"] for _, body in keyed}) == 1
    unkeyed = asyncio.run(at_once(bearer, 3))
    assert [status for status, _ in unkeyed] == [202] * 3
    assert len(job_runs(db_path, "deploy")) == 1 + 1 + 3
    wait_until(lambda: len(sink.requests_to("/deploy")) == 5, what="every run to fire")

    # A key another job saw is no repeat for this one; an unusable key is refused.
    jobctl("add", "other", "--url", f"{sink.url}/other", "--manual")
    other = enable_hook(jobctl, "other")
    again = post(
        f"{base}/hooks/other",
        b"x",
        {"Authorization": f"Bearer {other}", "Idempotency-Key": "order-7"},
    )
    assert again[0] == 202
    too_long = {**bearer, "Idempotency-Key": "k" * 256}
    assert post(f"{base}/hooks/deploy", b"x", too_long)[0] == 400
    not_text = [b"Authorization: Bearer " + secret.encode(), b"Idempotency-Key: \xff"]
    assert raw_post(base, b"/hooks/deploy", not_text) == 400
    assert len(job_runs(db_path, "deploy")) == 5


def test_replay_window_is_24_hours_per_job(jobctl: Invoke, db_path: Path) -> None:
    from jobctl import engine
    from jobctl.store import open_store

    jobctl("add", "a", "--url", "http://127.0.0.1:9/a", "--manual", "--overlap", "allow")
    jobctl("add", "b", "--url", "http://127.0.0.1:9/b", "--manual", "--overlap", "allow")
    store = open_store(db_path)
    conn = store.conn
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    keys = ["delivery:d1", "idempotency:k1"]
    first, status = engine.queue_webhook(store, "a", t0, payload="", replay_keys=keys)
    assert status == "queued"
    almost = t0 + timedelta(hours=24) - timedelta(seconds=1)
    for key in keys:  # either header alone is a repeat
        assert engine.queue_webhook(store, "a", almost, payload="", replay_keys=[key]) == (
            first,
            "duplicate",
        )
    other, status = engine.queue_webhook(store, "b", almost, payload="", replay_keys=keys)
    assert status == "queued"
    later, status = engine.queue_webhook(
        store, "a", t0 + timedelta(hours=24, seconds=1), payload="", replay_keys=keys
    )
    assert status == "queued" and later != first
    # Expired entries are pruned as requests come in; a removed job takes its own along.
    seen = "SELECT job_id, run_id FROM hook_deliveries ORDER BY job_id, key"
    assert {run for _, run in conn.execute(seen)} == {other, later}
    assert jobctl("rm", "b", "--yes", "--force").exit_code == 0
    assert {run for _, run in conn.execute(seen)} == {later}
    conn.close()


def test_two_processes_with_one_key_start_one_run(jobctl: Invoke, db_path: Path) -> None:
    from jobctl import engine
    from jobctl.store import open_store

    jobctl("add", "a", "--url", "http://127.0.0.1:9/a", "--manual", "--overlap", "allow")
    start = threading.Barrier(4)
    results: list[tuple[int | None, str]] = []

    def call() -> None:
        store = open_store(db_path)
        start.wait()
        results.append(
            engine.queue_webhook(
                store, "a", datetime.now(UTC), payload="", replay_keys=["delivery:same"]
            )
        )
        store.close()

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for _, status in results) == ["duplicate"] * 3 + ["queued"]
    assert len({run for run, _ in results}) == 1
    assert len(job_runs(db_path, "a")) == 1


def test_forwarded_payload_keeps_the_callers_content_type(
    jobctl: Invoke, db_path: Path, sink: Sink, listening: Any
) -> None:
    sink.replies["/flaky"] = Reply(status=503)
    forward = ["--manual", "--forward-payload", "--overlap", "allow"]
    jobctl(
        "add", "flaky", "--url", f"{sink.url}/flaky", *forward, "--retries", "1", "--backoff", "1s"
    )
    jobctl(
        "add",
        "typed",
        "--url",
        f"{sink.url}/typed",
        *forward,
        "--header",
        "content-type: text/x-job",
    )
    flaky = {"Authorization": f"Bearer {enable_hook(jobctl, 'flaky')}"}
    typed = {"Authorization": f"Bearer {enable_hook(jobctl, 'typed')}"}
    base = listening()
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    assert post(f"{base}/hooks/flaky", b'{"a": 1}', {**flaky, **json_type})[0] == 202
    assert post(f"{base}/hooks/typed", b'{"b": 2}', {**typed, **json_type})[0] == 202
    wait_until(lambda: len(sink.requests_to("/flaky")) == 2, what="the run and its retry")
    wait_until(lambda: sink.requests_to("/typed"), what="the typed run")

    def types(received: Any) -> list[str]:
        return [v for k, v in received.headers.items() if k.lower() == "content-type"]

    for received in [*sink.requests_to("/flaky"), *sink.requests_to("/typed")]:
        assert types(received) == ["application/json; charset=utf-8"], received.headers
    # A caller that names no type: the job's own header, else none of ours.
    assert (
        raw_post(base, b"/hooks/typed", [f"Authorization: {typed['Authorization']}".encode()])
        == 202
    )
    wait_until(lambda: len(sink.requests_to("/typed")) == 2, what="the untyped call")
    assert types(sink.requests_to("/typed")[1]) == ["text/x-job"]


def get_with(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _listening_port(db_path: Path, daemon: DaemonProcess) -> int:
    row = wait_until(
        lambda: query(
            db_path, "SELECT listen FROM daemon WHERE listen IS NOT NULL AND pid = ?", daemon.pid
        ),
        what="the listener",
    )
    return int(str(row[0][0]).rsplit(":", 1)[1])


def test_metrics_token(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    jobctl("add", "secret-job-name", "--url", "http://127.0.0.1:9/x", "--manual")
    env_file = tmp_path / "daemon.env"
    env_file.write_text("METRICS_TOKEN=s3cret-metrics\n")
    # With a token (here from the env file), /metrics wants it, wherever the listener binds.
    daemon = DaemonProcess(
        db_path,
        "--listen",
        "0.0.0.0:0",
        "--env-file",
        str(env_file),
        "--metrics-token-env",
        "METRICS_TOKEN",
    ).wait_ready()
    try:
        base = f"http://127.0.0.1:{_listening_port(db_path, daemon)}"
        assert get_with(f"{base}/metrics", {}) == 401
        assert get_with(f"{base}/metrics", {"Authorization": "Bearer wrong"}) == 401
        assert get_with(f"{base}/metrics", {"Authorization": "Basic s3cret-metrics"}) == 401
        assert get_with(f"{base}/metrics", {"Authorization": "Bearer s3cret-metrics"}) == 200
        assert get_with(f"{base}/healthz", {}) == 200
    finally:
        assert daemon.stop() == 0
    assert "without --metrics-token-env" not in daemon.log()
    # Beyond loopback without a token: refused, and said at start.
    daemon = DaemonProcess(db_path, "--listen", "0.0.0.0:0").wait_ready()
    try:
        base = f"http://127.0.0.1:{_listening_port(db_path, daemon)}"
        status, text = get(f"{base}/metrics")
        assert status == 401 and "secret-job-name" not in text
        assert get(f"{base}/healthz")[0] == 200
    finally:
        assert daemon.stop() == 0
    warnings = [line for line in daemon.log().splitlines() if "--metrics-token-env" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0].upper(), daemon.log()


def test_metrics_token_env_must_be_set(jobctl: Invoke, db_path: Path) -> None:
    result = jobctl("daemon", "--listen", "0", "--metrics-token-env", "JOBCTL_TEST_NO_SUCH_VAR")
    assert result.exit_code == 2
    assert result.stderr.startswith("jobctl: --metrics-token-env JOBCTL_TEST_NO_SUCH_VAR")
    assert not db_path.exists()


def _post_together(url: str, secret: str, count: int) -> list[tuple[int, dict[str, Any]]]:
    """`count` webhook calls sent at the same moment, each on its own connection."""
    barrier = threading.Barrier(count)
    answers: list[tuple[int, dict[str, Any]]] = []

    def call(index: int) -> None:
        barrier.wait()
        answers.append(post(url, str(index).encode(), {"Authorization": f"Bearer {secret}"}))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


@pytest.mark.parametrize("overlap", ["skip", "queue", "allow"])
def test_webhooks_arriving_together_keep_the_overlap_policy(
    jobctl: Invoke, db_path: Path, listening: Any, overlap: str
) -> None:
    jobctl("add", "slow", "--exec", "sleep 2", "--manual", "--overlap", overlap)
    secret = enable_hook(jobctl, "slow")
    base = listening()
    answers = _post_together(f"{base}/hooks/slow", secret, 4)
    assert sorted(code for code, _ in answers) == [202] * 4
    statuses = sorted(body["status"] for _, body in answers)
    if overlap == "skip":
        # one run; a webhook while it is running or queued is recorded skipped
        assert statuses == ["queued", "skipped", "skipped", "skipped"]
    else:
        assert statuses == ["queued"] * 4
    wait_until(
        lambda: (
            all(r["status"] not in ("queued", "running") for r in job_runs(db_path, "slow"))
            and len(job_runs(db_path, "slow")) == 4
        ),
        timeout=30,
        what="every run to end",
    )
    rows = job_runs(db_path, "slow")
    ended = sorted(r["status"] for r in rows)
    if overlap == "skip":
        assert ended == ["skipped", "skipped", "skipped", "succeeded"]
        assert all("overlap skip" in r["error"] for r in rows if r["status"] == "skipped")
    else:
        assert ended == ["succeeded"] * 4
    fired = sorted(
        (_when(r["started_at"]), _when(r["finished_at"])) for r in rows if r["started_at"]
    )
    if overlap == "allow":  # together
        assert fired[-1][0] < fired[0][1], fired
    elif overlap == "queue":  # one after another
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(fired)), fired


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
