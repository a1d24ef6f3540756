"""Actions against real parts: an aiohttp server on 127.0.0.1:0 and real subprocesses."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from jobctl import __version__
from jobctl.actions import OUTPUT_CAP, FireContext, Outcome, cap_output, fail_before_start
from jobctl.actions.exec import run_command
from jobctl.actions.http import HttpFirer, status_matches
from jobctl.models import ExecSpec, HttpSpec
from tests.realparts import wait_until_async

SECRET = "s3cr3t-Value-42"
SLOT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def context(
    *, timeout: float = 5.0, env: Mapping[str, str] | None = None, job: str = "backup"
) -> FireContext:
    return FireContext(
        job=job, run_id=17, scheduled_for=SLOT, attempt=1, timeout=timeout, env=dict(env or {})
    )


def everything_stored(outcome: Outcome) -> str:
    """The text of what the engine would store, to check that no secret leaks into it."""
    return repr((outcome.snapshot, outcome.details, outcome.error, outcome.output))


# ----------------------------------------------------------------------------- HTTP


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes


class Sink:
    """A recording HTTP server with a few behaviours chosen by path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.release = asyncio.Event()  # lets /slow answer, so cleanup never waits
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Received(request.method, request.path, request.query_string, request.headers, body)
        )
        parts = request.path.strip("/").split("/")
        if parts[0] == "status":
            return web.Response(status=int(parts[1]), text="status body")
        if parts[0] == "slow":
            await self.release.wait()
            return web.Response(text="late")
        if parts[0] == "redirect":
            left = int(parts[1])
            if left == 0:
                return web.Response(text="arrived")
            raise web.HTTPFound(f"/redirect/{left - 1}")
        if parts[0] == "big":
            return web.Response(body=b"x" * 200_000)
        if parts[0] == "stream":  # chunked: no Content-Length
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(20):
                await response.write(b"y" * 10_000)
            await response.write_eof()
            return response
        if parts[0] == "echo":  # a careless server repeating the credentials it got
            auth = request.headers.get("Authorization", "")
            return web.Response(
                text=f"you sent {auth} and {body.decode()}",
                headers={"X-Echo": auth},
                status=int(parts[1]),
            )
        return web.Response(text="ok")


def fire_http(
    path: str, spec: Mapping[str, Any] | None = None, **ctx: Any
) -> tuple[Outcome, list[Received]]:
    async def scenario() -> tuple[Outcome, list[Received]]:
        async with Sink() as sink, HttpFirer() as firer:
            full = {
                "method": "GET",
                "url": sink.base + path,
                "headers": {},
                "body": None,
                "expect": "2xx",
                **(spec or {}),
            }
            full["url"] = full["url"].replace("BASE", sink.base)
            outcome = await firer.fire(HttpSpec.from_dict(full), context(**ctx))
            return outcome, sink.requests

    return asyncio.run(scenario())


def test_headers_identify_jobctl_and_the_run() -> None:
    outcome, requests = fire_http(
        "/hello", {"headers": {"X-Jobctl-Job": "forged", "x-jobctl-run": "999", "X-Mine": "1"}}
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.http_status == 200
    assert outcome.output == "ok"
    assert outcome.error is None
    sent = requests[0].headers
    assert sent["User-Agent"] == f"jobctl/{__version__}"
    assert sent.getall("X-Jobctl-Job") == ["backup"]
    assert sent.getall("X-Jobctl-Run") == ["17"]
    assert sent["X-Jobctl-Scheduled-For"] == "2026-01-02T03:04:05Z"
    assert sent["X-Mine"] == "1"
    assert outcome.snapshot is not None
    assert outcome.snapshot["headers"]["X-Jobctl-Job"] == "backup"
    assert outcome.started_at <= outcome.finished_at
    assert outcome.duration_ms >= 0


def test_method_body_and_custom_headers() -> None:
    outcome, requests = fire_http(
        "/put",
        {"method": "PUT", "body": "héllo", "headers": {"Content-Type": "text/plain"}},
    )
    assert outcome.status == "succeeded"
    got = requests[0]
    assert (got.method, got.path, got.body) == ("PUT", "/put", "héllo".encode())
    assert got.headers["Content-Type"] == "text/plain"
    snapshot = outcome.snapshot
    assert snapshot is not None
    assert (snapshot["method"], snapshot["body"]) == ("PUT", "héllo")
    assert snapshot["url"].endswith("/put")
    assert snapshot["headers"]["Content-Type"] == "text/plain"


def test_body_without_method_is_a_post() -> None:
    outcome, requests = fire_http("/p", {"method": None, "body": "x=1"})
    assert outcome.status == "succeeded"
    assert requests[0].method == "POST"


def test_secrets_are_expanded_when_sent_and_redacted_everywhere_else() -> None:
    outcome, requests = fire_http(
        "/echo/200?api_key=${TOKEN}&page=2",
        {
            "method": "POST",
            "headers": {
                "Authorization": "Bearer ${TOKEN}",
                "X-Note": "id-${TOKEN}",
                "X-Api-Key": "literal-key",
                "X-Plain": "visible",
            },
            "body": '{"token": "${TOKEN}"}',
        },
        env={"TOKEN": SECRET},
    )
    assert outcome.status == "succeeded", outcome.error
    got = requests[0]
    assert got.headers["Authorization"] == f"Bearer {SECRET}"
    assert got.headers["X-Note"] == f"id-{SECRET}"
    assert got.query == f"api_key={SECRET}&page=2"
    assert got.body == f'{{"token": "{SECRET}"}}'.encode()

    assert SECRET not in everything_stored(outcome)
    assert "literal-key" not in everything_stored(outcome)
    snapshot = outcome.snapshot
    assert snapshot is not None
    assert snapshot["headers"]["Authorization"] == "***"
    assert snapshot["headers"]["X-Note"] == "***"
    assert snapshot["headers"]["X-Api-Key"] == "***"
    assert snapshot["headers"]["X-Plain"] == "visible"
    assert snapshot["body"] == '{"token": "***"}'
    assert "api_key=***" in snapshot["url"] and "page=2" in snapshot["url"]
    assert outcome.details["response_headers"]["X-Echo"] == "Bearer ***"
    assert "api_key=***" in outcome.details["final_url"]


def test_a_spec_with_nothing_to_expand_is_sent_and_shown_as_expanded_at_each_fire() -> None:
    """Such a spec's request and snapshot are made once per set of secrets and kept
    (HttpFirer._prepared): byte for byte what expanding and masking at each fire makes (a
    webhook's forwarded payload still takes that path: the reference here), for runs with no
    secret, with an env file's value used nowhere, one that is a literal of the spec, one that
    is the job's name, and none again (the daemon re-reads its env file on SIGHUP)."""
    from copy import deepcopy
    from dataclasses import replace

    from jobctl.secrets import FireEnvironment

    visible, job = "literal-visible-value", "nightly-backup-job"
    envs: list[dict[str, str]] = [
        {},
        {"UNUSED": "never-seen-value"},
        {"K": visible},
        {"J": job},
        {},
    ]

    async def scenario() -> list[tuple[Outcome, Received]]:
        async with Sink() as sink, HttpFirer() as firer:
            spec = HttpSpec.from_dict(
                {
                    "method": "POST",
                    "url": sink.base + "/echo/200?token=lit-token&page=2",
                    "headers": {
                        "Authorization": "Bearer lit",
                        "X-Plain": visible,
                        "Content-Type": "text/plain",
                    },
                    "body": f"héllo {visible}",
                    "expect": "2xx",
                }
            )
            assert spec.body is not None
            forwarded = replace(spec, forward_payload=True)
            fired = []
            for file_values in envs:
                env = FireEnvironment({"PATH": "/usr/bin"}, file_values)
                for which, payload in ((spec, None), (forwarded, spec.body)):
                    ctx = FireContext(
                        job=job, run_id=17, scheduled_for=SLOT, attempt=1, timeout=5.0,
                        env=env, payload=payload,
                    )  # fmt: skip
                    # as the action made it: the last pass would hide its mistakes
                    outcome = await firer.fire(which, ctx)
                    assert ctx.expansion.redact_outcome(deepcopy(outcome)) == outcome
                    fired.append((outcome, sink.requests[-1]))
            return fired

    fired = asyncio.run(scenario())
    for outcome, _ in fired:
        assert outcome.status == "succeeded", outcome.error
        outcome.details.pop("timings")
    stored = [(o.snapshot, o.details, o.output, o.error) for o, _ in fired]
    sent = [
        (got.method, got.path, got.query, list(got.headers.items()), got.body) for _, got in fired
    ]
    for kept in range(0, len(fired), 2):  # each kept picture against its reference
        assert stored[kept] == stored[kept + 1]
    assert len(set(map(repr, sent))) == 1
    plain, _, _, _, hidden, _, named, _, again, _ = (o for o, _ in fired)
    assert plain.snapshot is not None and named.snapshot is not None
    assert plain.snapshot["headers"]["X-Plain"] == visible
    assert plain.snapshot["body"] == f"héllo {visible}"
    assert visible not in everything_stored(hidden)  # the env file's value: a secret now
    assert named.snapshot["headers"]["X-Jobctl-Job"] == "***"
    assert (again.snapshot, again.details) == (plain.snapshot, plain.details)


def test_secret_never_in_a_failure_either() -> None:
    outcome, _ = fire_http(
        "/echo/503", {"headers": {"Authorization": "${TOKEN}"}}, env={"TOKEN": SECRET}
    )
    assert outcome.status == "failed"
    assert outcome.error == "HTTP 503 Service Unavailable (expected 2xx)"
    assert SECRET not in everything_stored(outcome)


def test_undefined_reference_fails_without_sending() -> None:
    outcome, requests = fire_http("/x", {"headers": {"Authorization": "Bearer ${NOPE}"}})
    assert requests == []
    assert outcome.status == "failed"
    assert outcome.error is not None and "${NOPE}" in outcome.error
    assert outcome.http_status is None
    assert outcome.snapshot is not None
    assert outcome.snapshot["headers"]["Authorization"] == "***"


def test_server_error_fails_with_its_status() -> None:
    outcome, _ = fire_http("/status/500")
    assert outcome.status == "failed"
    assert outcome.http_status == 500
    assert outcome.error == "HTTP 500 Internal Server Error (expected 2xx)"
    assert outcome.output == "status body"


def test_expected_non_2xx_status_succeeds() -> None:
    outcome, _ = fire_http("/status/404", {"expect": "2xx,404"})
    assert outcome.status == "succeeded"
    assert outcome.http_status == 404


@pytest.mark.parametrize(
    ("expect", "status", "matches"),
    [
        ("2xx", 200, True),
        ("2xx", 299, True),
        ("2xx", 300, False),
        ("2xx", 199, False),
        ("200,204", 204, True),
        ("200,204", 201, False),
        ("200-299", 250, True),
        ("200-299", 300, False),
        ("2xx,404", 404, True),
        ("2xx,404", 403, False),
        ("3xx, 410-420", 415, True),
        ("3XX", 301, True),
        ("", 200, True),
        ("", 500, False),
    ],
)
def test_status_matches(expect: str, status: int, matches: bool) -> None:
    assert status_matches(expect, status) is matches


def test_connection_refused_fails_with_the_cause() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome, _ = fire_http("/", {"url": f"http://127.0.0.1:{port}/x"})
    assert outcome.status == "failed"
    assert outcome.error == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert outcome.http_status is None


def test_slow_endpoint_times_out() -> None:
    started = time.monotonic()
    outcome, requests = fire_http("/slow", timeout=0.3)
    elapsed = time.monotonic() - started
    assert outcome.status == "timed_out"
    assert outcome.error == "timed out after 300ms"
    assert len(requests) == 1
    assert 250 <= outcome.duration_ms < 2000
    assert elapsed < 3


def test_redirects_are_followed_up_to_ten() -> None:
    outcome, requests = fire_http("/redirect/10")
    assert outcome.status == "succeeded", outcome.error
    assert outcome.output == "arrived"
    assert outcome.details["final_url"].endswith("/redirect/0")
    assert len(requests) == 11

    outcome, _ = fire_http("/redirect/11")
    assert outcome.status == "failed"
    assert outcome.error == "too many redirects (more than 10)"


def test_big_body_is_capped_with_its_size() -> None:
    outcome, _ = fire_http("/big")
    assert outcome.status == "succeeded"
    assert outcome.output is not None
    assert outcome.output.startswith("x" * OUTPUT_CAP + "\n[output truncated")
    assert outcome.output.endswith("[output truncated: 200000 bytes in all, 65536 kept]")


def test_big_chunked_body_is_capped_and_counted_to_its_end() -> None:
    outcome, _ = fire_http("/stream")
    assert outcome.status == "succeeded"
    assert outcome.output is not None
    assert outcome.output == (
        "y" * OUTPUT_CAP + "\n[output truncated: 200000 bytes in all, 65536 kept]"
    )
    assert outcome.details["body_size"] == 200000


def test_one_firer_serves_many_concurrent_fires() -> None:
    async def scenario() -> list[Outcome]:
        async with Sink() as sink, HttpFirer(max_connections=8) as firer:
            spec = {
                "method": "GET",
                "url": sink.base + "/n",
                "headers": {},
                "body": None,
                "expect": "2xx",
            }
            return await asyncio.gather(
                *(firer.fire(HttpSpec.from_dict(spec), context()) for _ in range(50))
            )

    outcomes = asyncio.run(scenario())
    assert [o.status for o in outcomes] == ["succeeded"] * 50


# ---------------------------------------------------------------------------- output


def test_cap_output_marks_what_it_dropped() -> None:
    assert cap_output(b"short") == "short"
    assert cap_output(b"\xff") == "\ufffd"
    text = cap_output(b"a" * (OUTPUT_CAP - 1) + "é".encode() + b"tail")
    # the two-byte character cut at the cap is dropped, not turned into a replacement mark
    assert (
        text
        == "a" * (OUTPUT_CAP - 1)
        + f"\n[output truncated: {OUTPUT_CAP + 5} bytes in all, 65536 kept]"
    )
    assert cap_output(b"b" * 10, total=1_000_000).endswith("1000000 bytes in all, 65536 kept]")


def test_fail_before_start() -> None:
    outcome = fail_before_start("undefined secret reference ${X}", SLOT)
    assert (outcome.status, outcome.started_at, outcome.duration_ms) == ("failed", SLOT, 0)


# ------------------------------------------------------------------------------ exec


def run_exec(
    command: str,
    *,
    shell: bool = False,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    kill_grace: float = 0.5,
) -> Outcome:
    spec = {"command": command, "shell": shell, "cwd": cwd, "env": dict(env or {})}
    return asyncio.run(
        run_command(
            ExecSpec.from_dict(spec), context(timeout=timeout, env=secrets), kill_grace=kill_grace
        )
    )


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_exec_exit_codes_and_signals() -> None:
    ok = run_exec("echo hi")
    assert (ok.status, ok.exit_code, ok.output, ok.error) == ("succeeded", 0, "hi\n", None)
    failed = run_exec("sh -c 'echo no; exit 3'")
    assert (failed.status, failed.exit_code, failed.error) == ("failed", 3, "exit code 3")
    assert failed.output == "no\n"
    killed = run_exec("kill -KILL $$", shell=True)
    assert (killed.status, killed.exit_code) == ("failed", -9)
    assert killed.error == "killed by signal SIGKILL"


def test_exec_interleaves_stdout_and_stderr_in_order() -> None:
    assert run_exec("echo a; echo b >&2; echo c", shell=True).output == "a\nb\nc\n"
    assert run_exec("sh -c 'echo a; echo b >&2; echo c'").output == "a\nb\nc\n"


def test_exec_env_cwd_and_run_identity(tmp_path: Path) -> None:
    outcome = run_exec(
        'echo "$GREETING|$JOBCTL_JOB|$JOBCTL_RUN_ID|$JOBCTL_SCHEDULED_FOR"; pwd; '
        "test -t 0 || echo no-terminal; read line || echo stdin-empty",
        shell=True,
        cwd=str(tmp_path),
        env={"GREETING": "hello there"},
    )
    assert outcome.status == "succeeded", outcome.output
    assert outcome.output == (
        f"hello there|backup|17|2026-01-02T03:04:05Z\n{tmp_path}\nno-terminal\nstdin-empty\n"
    )
    snapshot = outcome.snapshot
    assert snapshot is not None
    assert (snapshot["cwd"], snapshot["env"], snapshot["shell"]) == (
        str(tmp_path),
        {"GREETING": "hello there"},
        True,
    )
    assert snapshot["command"].startswith('echo "$GREETING|')


def test_exec_without_shell_does_not_expand_shell_syntax() -> None:
    assert run_exec("echo $HOME 'a  b' ; x").output == "$HOME a  b ; x\n"
    assert run_exec("echo $HOME", shell=True).output == os.environ["HOME"] + "\n"


def test_exec_secrets_reach_the_command_but_not_the_record(tmp_path: Path) -> None:
    target = tmp_path / "got"
    outcome = run_exec(
        f"sh -c 'printf %s \"$PASS|$1\" > {target}; echo $1' arg0 '${{TOKEN}} x'",
        env={"PASS": "${TOKEN}", "PLAIN": "1"},
        secrets={"TOKEN": SECRET},
    )
    assert outcome.status == "succeeded", outcome.error
    # one argument even though the value has a space: split first, expand after
    assert target.read_text() == f"{SECRET}|{SECRET} x"
    assert SECRET not in everything_stored(outcome)
    assert outcome.snapshot is not None
    assert outcome.snapshot["env"] == {"PASS": "***", "PLAIN": "1"}
    assert "'*** x'" in outcome.snapshot["command"]
    assert outcome.output == "*** x\n"


def test_exec_undefined_reference_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outcome = run_exec(f"touch {marker} ${{NOPE}}")
    assert outcome.status == "failed"
    assert outcome.error is not None and "${NOPE}" in outcome.error
    assert not marker.exists()


def test_exec_command_that_cannot_start(tmp_path: Path) -> None:
    missing = run_exec("no-such-command-jobctl --flag")
    assert missing.status == "failed"
    assert missing.error == "cannot start 'no-such-command-jobctl': No such file or directory"
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    denied = run_exec(str(script))
    assert denied.error == f"cannot start '{script}': Permission denied"
    bad_cwd = run_exec("echo hi", cwd=str(tmp_path / "nope"))
    assert bad_cwd.status == "failed"
    assert (
        bad_cwd.error
        == f"cannot change to directory '{tmp_path / 'nope'}': No such file or directory"
    )
    assert (
        run_exec("echo 'unclosed").error
        == 'invalid command "echo \'unclosed": No closing quotation'
    )


def test_exec_output_is_capped_and_drained() -> None:
    outcome = run_exec("head -c 1000000 /dev/zero | tr '\\0' a", shell=True)
    assert outcome.status == "succeeded"
    assert outcome.output == "a" * OUTPUT_CAP + (
        "\n[output truncated: 1000000 bytes in all, 65536 kept]"
    )


def test_exec_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    outcome = run_exec(f"sleep 30 & echo $! > {pidfile}; sleep 30; wait", shell=True, timeout=0.5)
    assert outcome.status == "timed_out"
    assert outcome.error == "timed out after 500ms; process group killed"
    assert outcome.duration_ms < 3000
    grandchild = int(pidfile.read_text())
    assert wait_until(lambda: not pid_alive(grandchild))


def test_exec_timeout_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = run_exec(
        f"trap '' TERM; sleep 30 & echo $! > {pidfile}; sleep 30; wait",
        shell=True,
        timeout=0.3,
        kill_grace=0.5,
    )
    assert outcome.status == "timed_out"
    assert outcome.exit_code == -9  # SIGTERM was ignored; SIGKILL after the grace was not
    assert 0.7 < time.monotonic() - started < 4
    grandchild = int(pidfile.read_text())
    assert wait_until(lambda: not pid_alive(grandchild))


def test_exec_background_child_holding_the_pipe_does_not_hold_the_run(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = run_exec(f"echo start; sleep 30 & echo $! > {pidfile}", shell=True)
    assert outcome.status == "succeeded"
    assert outcome.output == "start\n"
    assert time.monotonic() - started < 4
    os.kill(int(pidfile.read_text()), 9)


def test_exec_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"

    async def scenario() -> None:
        spec = {
            "command": f"sleep 30 & echo $! > {pidfile}; wait",
            "shell": True,
            "cwd": None,
            "env": {},
        }
        task: asyncio.Task[Outcome] = asyncio.create_task(
            run_command(ExecSpec.from_dict(spec), context(), kill_grace=0.5)
        )
        await wait_until_async(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    grandchild = int(pidfile.read_text())
    assert wait_until(lambda: not pid_alive(grandchild))
