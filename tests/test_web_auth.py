"""Who may use the API and the dashboard: a real `jobctl daemon --listen 127.0.0.1:0`, real
HTTP requests, `jobctl dashboard`'s login links and `jobctl api token`.

Paths no part serves (`/api/v1/nothing-here`) show what the guard lets through: 404 past
it, 401 or 403 from it."""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobctl import access
from jobctl.cli import cli
from jobctl.models.access import Session
from jobctl.store import SqliteStore, open_store
from jobctl.timeutil import utcnow
from tests.conftest import CliResult, create_database, dump_database
from tests.realparts import DaemonProcess, query, run_jobctl, wait_until
from tests.test_webhooks import raw_post

NOWHERE = "/api/v1/nothing-here"  # past the guard: 404
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.body)
        return data

    @property
    def text(self) -> str:
        return self.body.decode()


def call(
    base: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    """One request, redirects not followed."""
    parts = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


@dataclass
class Served:
    db: Path
    base: str
    daemon: DaemonProcess

    def jobctl(self, *args: str) -> CliResult:
        result = CliRunner().invoke(cli, ["--db", str(self.db), *args], catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    def token(self) -> str:
        result = self.jobctl("api", "token")
        assert result.exit_code == 0, result.stderr
        return result.stdout.strip()

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def login_path(self) -> str:
        result = self.jobctl("dashboard", "--json")
        assert result.exit_code == 0, result.stderr
        url = json.loads(result.stdout)["url"]
        assert url.startswith(f"{self.base}/login?code=")
        return str(url).removeprefix(self.base)

    def log_in(self) -> tuple[str, str]:
        """A new session: its cookie header value and its CSRF value."""
        answer = call(self.base, "GET", self.login_path())
        assert answer.status == 303, answer.text
        cookie = answer.headers["Set-Cookie"].split(";")[0]
        store = _store(self.db)
        try:
            session = access.find_session(store, cookie.split("=", 1)[1], utcnow())
        finally:
            store.close()
        assert session is not None
        return cookie, session.csrf


def _store(db: Path) -> SqliteStore:
    return open_store(db)


def start_listening(db: Path, address: str = "127.0.0.1:0") -> tuple[DaemonProcess, str]:
    daemon = DaemonProcess(db, "--listen", address).wait_ready()
    row = wait_until(
        lambda: query(db, "SELECT listen FROM daemon WHERE listen IS NOT NULL"),
        what="the listener",
    )
    return daemon, str(row[0][0])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One listening daemon for the module (tests that rotate the token read it anew)."""
    db = tmp_path_factory.mktemp("auth") / "data" / "jobctl.db"
    add = run_jobctl(db, "add", "deploy", "--exec", "true", "--manual")
    assert add.returncode == 0, add.stderr
    daemon, base = start_listening(db)
    yield Served(db, base, daemon)
    assert daemon.stop() == 0, daemon.log()


def test_without_the_token_every_page_and_api_call_is_refused(served: Served) -> None:
    for method, path in [
        ("GET", "/"),
        ("GET", "/jobs"),
        ("GET", "/jobs/deploy"),
        ("GET", "/runs/1"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/jobs/deploy/run"),
        ("DELETE", "/api/v1/jobs/deploy"),
        ("POST", "/logout"),
        ("GET", NOWHERE),
    ]:
        answer = call(served.base, method, path)
        assert answer.status == 401, (method, path, answer.text)
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="jobctl"'
        if path.startswith("/api/"):
            assert "jobctl api token" in answer.json()["error"]
        else:
            assert answer.headers["Content-Type"].startswith("text/html")
            assert "jobctl dashboard" in answer.text
    wrong = [
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {served.token()}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {served.token()[:-1]}"},
        {"Cookie": "jobctl_session=made-up"},
        {"X-Api-Token": served.token()},
    ]
    for headers in wrong:
        answer = call(served.base, "GET", "/api/v1/jobs", headers)
        assert answer.status == 401, (headers, answer.text)
        assert answer.json()["error"].startswith("unauthorized")


def test_the_token_opens_the_api_and_needs_no_csrf(served: Served) -> None:
    token = served.token()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        answer = call(served.base, method, NOWHERE, {"Authorization": f"Bearer {token}"})
        assert answer.status == 404, (method, answer.text)
    answer = call(served.base, "POST", NOWHERE, {"Authorization": f"bearer  {token} "})
    assert answer.status == 404


def test_healthz_hooks_and_metrics_keep_their_own_rules(served: Served) -> None:
    assert call(served.base, "GET", "/healthz").status == 200
    assert call(served.base, "GET", "/metrics").status == 200  # loopback, no metrics token
    result = served.jobctl("hook", "enable", "deploy", "--json")
    assert result.exit_code == 0, result.stderr
    secret = json.loads(result.stdout)["secret"]
    answer = call(served.base, "POST", "/hooks/deploy", {"Authorization": f"Bearer {secret}"})
    assert answer.status == 202, answer.text
    refused = call(served.base, "POST", "/hooks/deploy", served.bearer())
    assert refused.status == 401 and refused.json() == {"error": "unauthorized"}


def test_a_login_link_works_once_and_sets_a_strict_cookie(served: Served) -> None:
    path = served.login_path()
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["code"][0]
    assert not any(code in line for line in dump_database(served.db))  # stored hashed
    answer = call(served.base, "GET", path)
    assert answer.status == 303 and answer.headers["Location"] == "/"
    assert answer.headers["Cache-Control"] == "no-store"
    cookie_header = answer.headers["Set-Cookie"]
    name, _, rest = cookie_header.partition("=")
    session_id, *flags = [part.strip() for part in rest.split(";")]
    assert name == "jobctl_session" and len(session_id) >= 43
    assert {"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"} <= set(flags)
    assert "Secure" not in flags  # plain HTTP on loopback
    assert not any(session_id in line for line in dump_database(served.db))
    cookie = {"Cookie": f"jobctl_session={session_id}"}
    assert call(served.base, "GET", NOWHERE, cookie).status == 404
    again = call(served.base, "GET", path)
    assert again.status == 401 and "jobctl dashboard" in again.text
    assert "Set-Cookie" not in again.headers
    reopened = call(served.base, "GET", path, cookie)  # in the browser it logged in
    assert reopened.status == 303 and reopened.headers["Location"] == "/"
    assert "Set-Cookie" not in reopened.headers
    assert call(served.base, "GET", "/login").status == 401
    assert call(served.base, "GET", "/login?code=made-up").status == 401


def test_a_head_request_does_not_use_up_a_login_link(served: Served) -> None:
    path = served.login_path()
    peeked = call(served.base, "HEAD", path)  # a link preview or checker
    assert peeked.status == 405 and "Set-Cookie" not in peeked.headers
    assert call(served.base, "GET", path).status == 303  # the link still works once


def test_the_cookie_is_secure_behind_an_https_proxy(served: Served) -> None:
    answer = call(served.base, "GET", served.login_path(), {"X-Forwarded-Proto": "https"})
    assert answer.status == 303
    assert "Secure" in [part.strip() for part in answer.headers["Set-Cookie"].split(";")]


def test_expired_codes_and_sessions_are_refused(served: Served) -> None:
    store = _store(served.db)
    try:
        now = utcnow()
        store.add_login_code(access.hashed("old-code"), now - timedelta(seconds=1))
        store.add_session(Session(access.hashed("old-session"), "x", now - timedelta(days=8), now))
    finally:
        store.close()
    answer = call(served.base, "GET", "/login?code=old-code")
    assert answer.status == 401 and "expired" in answer.text
    refused = call(served.base, "GET", NOWHERE, {"Cookie": "jobctl_session=old-session"})
    assert refused.status == 401 and "jobctl dashboard" in refused.json()["error"]


def test_cookie_writes_need_the_sessions_csrf_value(served: Served) -> None:
    cookie, csrf = served.log_in()
    other_cookie, other_csrf = served.log_in()
    headers = {"Cookie": cookie}
    assert call(served.base, "GET", NOWHERE, headers).status == 404  # reads need none
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for extra in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": other_csrf}):
            answer = call(served.base, method, NOWHERE, {**headers, **extra})
            assert answer.status == 403, (method, extra, answer.text)
            assert "X-CSRF-Token" in answer.json()["error"]
        answer = call(served.base, method, NOWHERE, {**headers, "X-CSRF-Token": csrf})
        assert answer.status == 404, (method, answer.text)
    form = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    wrong = call(served.base, "POST", "/logout", form, b"csrf=wrong")
    assert wrong.status == 403 and wrong.headers["Content-Type"].startswith("text/html")
    body = urllib.parse.urlencode({"csrf": csrf}).encode()
    out = call(served.base, "POST", "/logout", form, body)
    assert out.status == 200 and "Logged out" in out.text
    assert out.headers["Set-Cookie"].startswith('jobctl_session=""')
    assert call(served.base, "GET", NOWHERE, headers).status == 401  # ended on the server
    assert call(served.base, "GET", NOWHERE, {"Cookie": other_cookie}).status == 404


def test_every_answer_carries_the_security_headers(served: Served) -> None:
    answers = [
        call(served.base, "GET", "/healthz"),
        call(served.base, "GET", "/api/v1/jobs"),
        call(served.base, "GET", "/"),
        call(served.base, "GET", "/login?code=nope"),
        call(served.base, "GET", served.login_path()),
        call(served.base, "GET", NOWHERE, served.bearer()),
        call(served.base, "POST", "/hooks/nobody"),
    ]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (answer.status, name)


def test_rotating_the_token_logs_every_session_out(served: Served) -> None:
    cookie, _csrf = served.log_in()
    old = served.token()
    result = served.jobctl("api", "token", "--rotate", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rotated"] is True and data["sessions_ended"] >= 1
    assert data["token"] != old and data["token"] == served.token()
    assert call(served.base, "GET", NOWHERE, {"Cookie": cookie}).status == 401
    assert call(served.base, "GET", NOWHERE, {"Authorization": f"Bearer {old}"}).status == 401
    new = {"Authorization": f"Bearer {data['token']}"}
    assert call(served.base, "GET", NOWHERE, new).status == 404
    plain = served.jobctl("api", "token", "--rotate")
    assert plain.exit_code == 0 and "logged out" in plain.stderr
    assert plain.stdout.strip() == served.token()


def test_the_daemon_listening_on_loopback_does_not_warn(served: Served) -> None:
    assert "beyond loopback" not in served.daemon.log()


def test_the_printed_and_opened_link_works(served: Served, tmp_path: Path) -> None:
    opened = tmp_path / "opened"
    opener = tmp_path / "opener.sh"
    opener.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    opener.chmod(0o755)
    result = run_jobctl(served.db, "dashboard", "--open", env={"BROWSER": f"{opener} %s"})
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert opened.read_text() == url and "works once" in result.stderr
    assert call(served.base, "GET", url.removeprefix(served.base)).status == 303
    behind = served.jobctl("dashboard", "--base-url", "https://jobs.example.com/")
    assert behind.exit_code == 0, behind.stderr
    assert behind.stdout.startswith("https://jobs.example.com/login?code=")
    path = behind.stdout.strip().removeprefix("https://jobs.example.com")
    assert call(served.base, "GET", path).status == 303
    bad = served.jobctl("dashboard", "--base-url", "ftp://x")
    assert bad.exit_code == 2 and "--base-url" in bad.stderr


def test_dashboard_exits_4_without_a_listening_daemon(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobctl.db"
    assert run_jobctl(db, "dashboard").returncode == 3  # a named database that is not there
    create_database(db)
    result = run_jobctl(db, "dashboard")
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "jobctl daemon --listen" in result.stderr
    daemon = DaemonProcess(db).wait_ready()  # running, but not listening
    try:
        result = run_jobctl(db, "dashboard", "--json")
        assert result.returncode == 4 and "no daemon is listening" in result.stderr
    finally:
        assert daemon.stop() == 0
    assert query(db, "SELECT code_hash FROM login_codes") == []


def test_api_token_is_made_once(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobctl.db"
    first = run_jobctl(db, "api", "token", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data == {"token": data["token"], "rotated": False, "sessions_ended": 0}
    again = run_jobctl(db, "api", "token")
    assert again.stdout == data["token"] + "\n" and again.stderr == ""
    assert os.stat(db).st_mode & 0o077 == 0  # the token lives in a private file


def test_listening_beyond_loopback_warns_once(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobctl.db"
    daemon, base = start_listening(db, "0.0.0.0:0")
    try:
        warning = "the API and the dashboard are served over plain HTTP beyond loopback"
        assert daemon.log().count(warning) == 1
        assert "put TLS in front" in daemon.log()
        assert base.startswith("http://0.0.0.0:")
        link = run_jobctl(db, "dashboard").stdout.strip()  # a link a browser here can open
        local = base.replace("0.0.0.0", "127.0.0.1")
        assert link.startswith(f"{local}/login?code=")
        assert call(local, "GET", link.removeprefix(local)).status == 303
    finally:
        assert daemon.stop() == 0


def test_credentials_that_are_not_utf8_are_refused_not_crashed_on(served: Served) -> None:
    token = served.token().encode()
    for header in [
        b"Authorization: Bearer \xff\xfe" + token,
        b"Authorization: \xffearer " + token,
        b"Cookie: jobctl_session=\xff\xfe",
    ]:
        assert raw_post(served.base, NOWHERE.encode(), [header]) == 401, header
    assert raw_post(served.base, NOWHERE.encode(), [b"Authorization: Bearer " + token]) == 404
    cookie, csrf = served.log_in()
    headers = [b"Cookie: " + cookie.encode(), b"X-CSRF-Token: \xff" + csrf.encode()]
    assert raw_post(served.base, NOWHERE.encode(), headers) == 403
    assert "Traceback" not in served.daemon.log()


def test_still_allowed_ends_with_the_session_or_the_token(tmp_path: Path) -> None:
    """For long answers (the event stream): the credentials are checked again."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from jobctl.web import auth
    from jobctl.web.app import CONTEXT
    from jobctl.web.context import WebContext

    db = tmp_path / "jobctl.db"
    checks: list[asyncio.Event] = []

    async def long_answer(request: web.Request) -> web.Response:
        """Answers whether the credentials still hold once the test has changed them."""
        gate = asyncio.Event()
        checks.append(gate)
        before = auth.still_allowed(request)
        await gate.wait()
        return web.json_response([before, auth.still_allowed(request)])

    async def scenario() -> list[list[bool]]:
        app = web.Application()
        context = WebContext(db, lambda: None, None)  # type: ignore[arg-type]
        app[CONTEXT] = context
        auth.install(app, context)
        app.router.add_get("/long", long_answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        store = open_store(db)
        answers = []
        try:
            token = access.ensure_token(store)
            code, _ = access.new_login_code(store, utcnow())
            opened = access.open_session(store, code, utcnow())
            assert opened is not None
            async with aiohttp.ClientSession() as client:
                for headers, change in [
                    ({"Cookie": f"jobctl_session={opened[0]}"}, lambda: None),
                    (
                        {"Cookie": f"jobctl_session={opened[0]}"},
                        lambda: access.end_session(store, opened[1]),
                    ),
                    ({"Authorization": f"Bearer {token}"}, lambda: access.rotate_token(store)),
                ]:
                    pending = asyncio.ensure_future(client.get(f"{base}/long", headers=headers))
                    deadline = asyncio.get_running_loop().time() + 10
                    while len(checks) < len(answers) + 1:
                        assert not pending.done(), (await pending).status
                        assert asyncio.get_running_loop().time() < deadline
                        await asyncio.sleep(0.01)
                    change()
                    checks[-1].set()
                    response = await pending
                    answers.append(await response.json())
        finally:
            store.close()
            await runner.cleanup()
            context.close()
        return answers

    assert asyncio.run(scenario()) == [[True, True], [True, False], [True, False]]
