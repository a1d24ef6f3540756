"""The REST API's runs, agents, status and event stream against a real `jobctl daemon
--listen`: cursor pages with Link headers, the CLI's JSON for the same database, cancel and
rerun, and server-sent events resumed with Last-Event-ID."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api_client import Api, cli_error, cli_json, start_api
from tests.realparts import wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Api]]:
    db = tmp_path_factory.mktemp("api-runs") / "data" / "jobctl.db"
    db.parent.mkdir()
    cli_json(db, "add", "pages", "--exec", "echo page; exit ${FAIL:-0}", "--manual")
    for _ in range(7):
        cli_json(db, "run", "pages")
    cli_json(db, "edit", "pages", "--env", "FAIL=3")
    for _ in range(3):
        CliRun(db, "run", "pages")
    cli_json(db, "run", "--exec", "echo adhoc")
    daemon, api = start_api(db)
    yield db, api
    assert daemon.stop() == 0, daemon.log()


def CliRun(db: Path, *args: str) -> None:
    """A CLI command whose run fails (exit 1) on purpose."""
    from click.testing import CliRunner

    from jobctl.cli import cli

    assert CliRunner().invoke(cli, list(args), env={"JOBCTL_DB": str(db)}).exit_code == 1


def _next(answer: Any) -> str | None:
    link = answer.headers.get("Link")
    if link is None:
        return None
    url, rel = link.split(";", 1)
    assert rel.strip() == 'rel="next"'
    return str(url.strip("<>")).removeprefix("/api/v1")


def test_pages_follow_the_link_header_through_the_whole_history(served: tuple[Path, Api]) -> None:
    db, api = served
    first = api.get("/runs?limit=4")
    assert first.status == 200
    assert first.body == cli_json(db, "runs", "--limit", "4")
    seen, page, path = [], first, _next(first)
    while True:
        seen += [run["id"] for run in page.body]
        if path is None:
            break
        assert "before=" in path and "limit=4" in path
        page = api.get(path)
        path = _next(page)
    everything = cli_json(db, "runs", "--limit", "0")
    assert seen == [run["id"] for run in everything]
    assert len(seen) == 11
    assert api.get("/runs").body == everything  # default limit 50
    assert _next(api.get("/runs")) is None


def test_filters_match_the_cli(served: tuple[Path, Api]) -> None:
    db, api = served
    cases = [
        ("/runs?job=pages&status=failed", ("runs", "pages", "--status", "failed")),
        ("/runs?status=failed,succeeded&limit=5", ("runs", "--status", "failed", "--status",
                                                  "succeeded", "--limit", "5")),
        ("/runs?trigger=manual&limit=2", ("runs", "--trigger", "manual", "--limit", "2")),
        ("/runs?adhoc=true", ("runs", "--adhoc")),
        ("/runs?since=1h", ("runs", "--since", "1h")),
        ("/jobs/pages/runs?status=succeeded&limit=3", ("runs", "pages", "--status", "succeeded",
                                                       "--limit", "3")),
    ]  # fmt: skip
    for path, command in cases:
        answer = api.get(path)
        assert answer.status == 200, (path, answer.body)
        assert answer.body == cli_json(db, *command), path
    newest_failed = api.get("/jobs/pages/runs?status=failed&limit=2")
    older = api.get(str(_next(newest_failed)))
    assert [run["status"] for run in older.body] == ["failed"]
    assert older.body[0]["id"] < newest_failed.body[-1]["id"]
    assert _next(older) is None


def test_bad_list_requests_get_the_cli_messages(served: tuple[Path, Api]) -> None:
    db, api = served
    status = api.get("/runs?status=lost")
    assert status.status == 400
    assert status.error == cli_error(db, "runs", "--status", "lost")[1]
    for path in ("/runs?limit=0", "/runs?limit=1001", "/runs?before=x", "/runs?since=soon",
                 "/runs?trigger=cosmic", "/runs?adhoc=perhaps", "/runs?job=pages&adhoc=true",
                 "/jobs/pages/runs?job=other"):  # fmt: skip
        assert api.get(path).status == 400, path
    missing = api.get("/runs?job=ghost")
    assert missing.status == 404 and missing.error == cli_error(db, "runs", "ghost")[1]
    assert api.get("/jobs/ghost/runs").status == 404


def test_a_run_its_output_and_the_errors(served: tuple[Path, Api]) -> None:
    db, api = served
    newest = api.get("/runs?job=pages&limit=1").body[0]
    shown = api.get(f"/runs/{newest['id']}")
    assert shown.body == cli_json(db, "runs", "show", str(newest["id"]))
    pieces = api.get(f"/runs/{newest['id']}/output").body
    assert "".join(piece["text"] for piece in pieces) == "page\n"
    assert all(piece["run"] == newest["id"] for piece in pieces)
    last = pieces[-1]["seq"]
    assert api.get(f"/runs/{newest['id']}/output?after={last}").body == []
    for bad in ("0", "-1", "x"):
        answer = api.get(f"/runs/{bad}")
        assert answer.status == 400 and "invalid run id" in answer.error
    missing = api.get("/runs/999999")
    assert missing.status == 404
    assert missing.error == cli_error(db, "runs", "show", "999999")[1]
    assert api.get("/runs/999999/output").status == 404


def test_cancel_and_rerun(served: tuple[Path, Api]) -> None:
    db, api = served
    ended = api.get("/runs?job=pages&limit=1").body[0]["id"]
    refused = api.post(f"/runs/{ended}/cancel")
    assert refused.status == 409
    assert refused.error == cli_error(db, "runs", "cancel", str(ended))[1]
    again = api.post(f"/runs/{ended}/rerun")
    assert again.status == 202
    assert again.body == {"job": "pages", "run": again.body["run"], "rerun_of": ended}
    rerun = wait_until(
        lambda: (run := api.get(f"/runs/{again.body['run']}").body)["finished_at"] and run,
        what="the rerun to end",
    )
    assert rerun["trigger"] == "rerun" and rerun["rerun_of"] == ended
    adhoc = api.get("/runs?adhoc=true").body[0]["id"]
    assert api.post(f"/runs/{adhoc}/rerun").status == 409
    assert api.post("/runs/999999/rerun").status == 404

    cli_json(db, "add", "long", "--exec", "sleep 30", "--manual")
    run_id = api.post("/jobs/long/run").body["run"]
    wait_until(lambda: api.get(f"/runs/{run_id}").body["status"] == "running", what="running")
    asked = api.post(f"/runs/{run_id}/cancel")
    assert asked.status == 202 and asked.body == {"run": run_id, "status": "running"}
    wait_until(lambda: api.get(f"/runs/{run_id}").body["status"] == "cancelled", what="cancel")


def test_clear_a_jobs_history(served: tuple[Path, Api]) -> None:
    db, api = served
    cli_json(db, "add", "brief", "--exec", "true", "--manual")
    cli_json(db, "run", "brief")
    cli_json(db, "run", "brief")
    cleared = api.delete("/jobs/brief/runs")
    assert cleared.status == 200 and cleared.body == {"job": "brief", "deleted": 2}
    assert api.get("/jobs/brief/runs").body == []
    assert api.get("/jobs/brief").body["runs_total"] == 0
    assert api.delete("/jobs/ghost/runs").status == 404


def test_agents_and_status_answer_as_the_cli(served: tuple[Path, Api]) -> None:
    db, api = served
    cli_json(db, "agent", "add", "echoer", "--command", "cat")
    assert api.get("/agents").body == cli_json(db, "agent", "list")
    assert api.get("/agents/echoer").body == cli_json(db, "agent", "show", "echoer")
    missing = api.get("/agents/ghost")
    assert missing.status == 404 and missing.error == cli_error(db, "agent", "show", "ghost")[1]

    def steady(status: dict[str, Any]) -> dict[str, Any]:
        status["daemon"].pop("last_tick_at")
        for item in status["in_flight"]:
            item.pop("elapsed_ms", None)
        return status

    answer = api.get("/status").body
    assert answer["daemon"]["running"] is True
    assert steady(answer) == steady(cli_json(db, "status"))


class EventReader:
    """A server-sent event stream read line by line with a deadline."""

    def __init__(self, api: Api, query: str = "", last_id: int | None = None) -> None:
        parts = urlsplit(api.base)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=15)
        headers = {"Authorization": f"Bearer {api.token}"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        self.conn.request("GET", f"/api/v1/events{query}", headers=headers)
        self.response = self.conn.getresponse()

    def next_event(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        while True:
            line = self.response.fp.readline().decode().rstrip("\n")
            if line == "" and "data" in fields:
                return {"id": int(fields["id"]), "event": fields["event"],
                        "data": json.loads(fields["data"])}  # fmt: skip
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value

    def close(self) -> None:
        self.conn.close()


def test_the_event_stream_resumes_after_last_event_id(served: tuple[Path, Api]) -> None:
    db, api = served
    cli_json(db, "add", "watched", "--exec", "true", "--every", "1h")
    live = EventReader(api, "?type=job.changed")
    assert live.response.status == 200
    assert live.response.headers["Content-Type"].startswith("text/event-stream")
    api.post("/jobs/watched/pause")
    api.post("/jobs/watched/resume")
    paused, resumed = live.next_event(), live.next_event()
    live.close()
    assert paused["event"] == "job.changed" and paused["data"]["state"] == "paused"
    assert resumed["data"]["state"] == "enabled" and resumed["id"] > paused["id"]
    since = cli_json(db, "events", "--since-id", str(paused["id"]), "--type", "job.changed")
    assert resumed["data"] == since  # one event: the CLI's --json object, as `data`

    again = EventReader(api, "?type=job.changed", last_id=paused["id"])
    assert again.next_event() == resumed  # nothing repeated, nothing missed
    again.close()
    by_query = EventReader(api, f"?since_id={paused['id'] - 1}&type=job.changed")
    assert by_query.next_event()["id"] == paused["id"]
    by_query.close()
    ahead = EventReader(api, "?type=job.changed", last_id=2**62)  # past the newest event
    api.post("/jobs/watched/pause")
    assert ahead.next_event()["data"]["state"] == "paused"  # from now on, not never
    ahead.close()
    assert api.get("/events?type=nonsense").status == 400
    assert api.get("/events?since_id=abc").status == 400


def test_the_document_describes_every_route_and_is_valid_json_schema(
    served: tuple[Path, Api],
) -> None:
    from aiohttp import web
    from jsonschema import Draft202012Validator

    from jobctl.web import api as api_module

    _, api = served
    document = api.get("/openapi.json").body
    assert document["openapi"].startswith("3.1")
    app = web.Application()
    api_module.install(app, None)  # type: ignore[arg-type]  # routes only: no context used
    routes = {
        (route.method.lower(), route.resource.canonical.removeprefix("/api/v1"))
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes == described
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for (method, path), operation in (
        ((method, path), operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ):
        assert operation["summary"] and "401" in operation["responses"], (method, path)


def test_an_open_stream_ends_with_its_token_and_with_the_daemon(tmp_path: Path) -> None:
    import time

    db = tmp_path / "data" / "jobctl.db"
    db.parent.mkdir()
    daemon, api = start_api(db)
    rotated = EventReader(api)
    assert rotated.response.status == 200
    new_token = cli_json(db, "api", "token", "--rotate")["token"]
    started = time.monotonic()
    assert rotated.response.read() == b"retry: 2000\n\n"  # ended by the rotation
    assert time.monotonic() - started < 10
    rotated.close()
    api.token = new_token
    stream = EventReader(api)
    assert stream.response.status == 200
    started = time.monotonic()
    assert daemon.stop() == 0, daemon.log()
    assert time.monotonic() - started < 5
    assert stream.response.read() in (b"", b"retry: 2000\n\n")  # ended, not hanging
    stream.close()


def test_a_quiet_stream_sends_keepalives_and_job_filters_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream's handler on a real aiohttp server in this process, with a keepalive
    interval short enough to wait for."""
    import asyncio

    from aiohttp import ClientSession, web

    from jobctl.web import api as api_module
    from jobctl.web import api_events
    from jobctl.web.context import CONTEXT, WebContext

    db = tmp_path / "jobctl.db"
    cli_json(db, "add", "one", "--exec", "true", "--manual")
    cli_json(db, "add", "two", "--exec", "true", "--manual")
    monkeypatch.setattr(api_events, "KEEPALIVE", 0.3)

    def pause(name: str) -> None:
        from click.testing import CliRunner

        from jobctl.cli import cli

        assert CliRunner().invoke(cli, ["pause", name], env={"JOBCTL_DB": str(db)}).exit_code == 0

    async def scenario() -> list[str]:
        context = WebContext(db, wake=lambda: None, host=None)  # type: ignore[arg-type]
        app = web.Application()
        app[CONTEXT] = context
        api_module.install(app, context)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        lines: list[str] = []
        try:
            async with ClientSession() as session:
                url = f"http://127.0.0.1:{port}/api/v1/events?job=two"
                async with session.get(url) as response:
                    await asyncio.to_thread(pause, "one")
                    await asyncio.to_thread(pause, "two")
                    while not any(line.startswith("event: job.changed") for line in lines) or (
                        ": keepalive" not in lines
                    ):
                        raw = await asyncio.wait_for(response.content.readline(), 10)
                        lines.append(raw.decode().rstrip("\n"))
        finally:
            await runner.cleanup()
            context.close()
        return lines

    lines = asyncio.run(scenario())
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]
    assert data and {event["job"] for event in data} == {"two"}
    assert ": keepalive" in lines
