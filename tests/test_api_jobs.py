"""The REST API's jobs against a real `jobctl daemon --listen`: the same JSON as the CLI's
--json for the same database, the CLI's messages with 400/404/409, and the token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_client import Api, cli_error, cli_json, start_api
from tests.realparts import wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Api]]:
    db = tmp_path_factory.mktemp("api-jobs") / "data" / "jobctl.db"
    db.parent.mkdir()
    daemon, api = start_api(db)
    yield db, api
    assert daemon.stop() == 0, daemon.log()


def _add(db: Path, name: str, *options: str) -> None:
    cli_json(db, "add", name, *options)


def test_every_api_request_needs_the_token(served: tuple[Path, Api]) -> None:
    _, api = served
    for path in ("/jobs", "/runs", "/status", "/openapi.json", "/events"):
        assert api.get(path, token=None).status == 401
        assert api.get(path, token="wrong").status == 401
    refused = api.post("/jobs", {"name": "sneaky"}, token=None)
    assert refused.status == 401 and "unauthorized" in refused.error
    assert api.get("/jobs/sneaky").status == 404


def test_list_and_show_answer_as_the_cli(served: tuple[Path, Api]) -> None:
    db, api = served
    _add(db, "list-a", "--exec", "echo a", "--every", "1h")
    _add(db, "list-b", "--url", "http://127.0.0.1:9/b", "--cron", "0 3 * * *", "--paused")
    cli_json(db, "run", "list-a")
    listed = api.get("/jobs")
    assert listed.status == 200
    assert listed.body == cli_json(db, "list")
    for name in ("list-a", "list-b"):
        assert api.get(f"/jobs/{name}").body == cli_json(db, "show", name)
    assert [job["name"] for job in api.get("/jobs?q=LIST-B").body] == ["list-b"]
    paused = api.get("/jobs?state=paused").body
    assert "list-b" in [job["name"] for job in paused]
    assert all(job["state"] == "paused" for job in paused)
    bad = api.get("/jobs?state=sleeping")
    assert bad.status == 400 and bad.error.startswith("invalid state 'sleeping'")
    missing = api.get("/jobs/no-such-job")
    assert missing.status == 404
    assert missing.error == cli_error(db, "show", "no-such-job")[1]


def test_create_change_and_delete_a_job(served: tuple[Path, Api]) -> None:
    db, api = served
    entry = {
        "name": "made",
        "action": "exec",
        "trigger": "every",
        "schedule": "5m",
        "spec": {"command": "echo made", "env": {"A": "1"}},
        "policies": {"timeout": "30s", "retries": 2},
    }
    created = api.post("/jobs", entry)
    assert created.status == 201, created.body
    assert created.headers["Location"] == "/api/v1/jobs/made"
    assert created.body == cli_json(db, "show", "made")
    assert created.body["policies"]["retries"] == 2
    twice = api.post("/jobs", entry)
    assert twice.status == 400  # the CLI's exit 2: bad input, nothing changed
    assert twice.error == cli_error(db, "add", "made", "--exec", "x", "--every", "5m")[1]

    for body, message in [
        ({**entry, "name": "m2", "action": "ftp"}, "invalid action 'ftp'"),
        ({**entry, "name": "m2", "schedule": "5 parsecs"}, "5 parsecs"),
        ({**entry, "name": "m2", "colour": "red"}, "unknown key 'colour'"),
        ({**entry, "name": "bad name!"}, "bad name!"),
    ]:
        refused = api.post("/jobs", body)
        assert refused.status == 400 and message in refused.error, refused.body
    not_json = api.post("/jobs", raw=b"{name: made")
    assert not_json.status == 400 and "not valid JSON" in not_json.error
    assert api.post("/jobs", [entry]).status == 400
    half_a_pair = api.post("/jobs", raw=b'{"name": "m2", "description": "\\ud800"}')
    assert half_a_pair.status == 400 and "surrogate" in half_a_pair.error
    too_deep = api.patch("/jobs/made", raw=b'{"spec": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert too_deep.status == 400 and "nested too deeply" in too_deep.error
    assert api.get("/jobs/m2").status == 404  # nothing half-made

    changed = api.patch("/jobs/made", {"schedule": "10m", "spec": {"cwd": "/tmp"}})
    assert changed.status == 200, changed.body
    assert changed.body == cli_json(db, "show", "made")
    assert changed.body["schedule"] == "10m"
    assert changed.body["spec"]["command"] == "echo made"  # kept
    assert changed.body["spec"]["cwd"] == "/tmp"
    assert changed.body["policies"]["retries"] == 2  # kept
    cleared = api.patch("/jobs/made", {"policies": {"retries": None}, "spec": {"cwd": None}})
    assert cleared.body["policies"]["retries"] == 0 and cleared.body["spec"]["cwd"] is None
    renamed = api.patch("/jobs/made", {"name": "remade"})
    assert renamed.body["name"] == "remade"
    assert api.get("/jobs/made").status == 404
    typo = api.patch("/jobs/remade", {"scheduel": "1m"})
    assert typo.status == 400 and "did you mean 'schedule'" in typo.error
    assert api.patch("/jobs/remade", {}).status == 400
    assert api.patch("/jobs/remade", {"schedule": "never"}).status == 400
    assert api.get("/jobs/remade").body["schedule"] == "10m"  # unchanged by refusals
    assert api.patch("/jobs/nope", {"schedule": "1m"}).status == 404

    assert api.delete("/jobs/remade").status == 204
    gone = api.delete("/jobs/remade")
    assert gone.status == 404 and gone.error == cli_error(db, "rm", "remade", "--yes")[1]


def test_pause_resume_and_next(served: tuple[Path, Api]) -> None:
    db, api = served
    _add(db, "cycle", "--exec", "true", "--cron", "*/5 * * * *")
    _add(db, "by-hand", "--exec", "true", "--manual")
    paused = api.post("/jobs/cycle/pause")
    assert paused.status == 200 and paused.body["state"] == "paused"
    assert paused.body == cli_json(db, "show", "cycle")
    resumed = api.post("/jobs/cycle/resume")
    assert resumed.body["state"] == "enabled" and resumed.body["next_run_at"]
    assert api.get("/jobs/cycle/next?n=3").body == cli_json(db, "next", "cycle", "-n", "3")
    assert len(api.get("/jobs/cycle/next").body) == 5
    assert api.get("/jobs/cycle/next?n=0").status == 400
    manual = api.get("/jobs/by-hand/next")
    assert manual.status == 400 and manual.error == cli_error(db, "next", "by-hand")[1]
    assert api.post("/jobs/nope/pause").status == 404


def test_run_now_queues_a_run_the_daemon_fires(served: tuple[Path, Api]) -> None:
    db, api = served
    _add(db, "now", "--exec", "echo fired", "--manual")
    queued = api.post("/jobs/now/run")
    assert queued.status == 202
    assert queued.body["job"] == "now" and isinstance(queued.body["run"], int)
    run = wait_until(
        lambda: (
            (found := api.get(f"/runs/{queued.body['run']}").body)["status"] == "succeeded"
            and found
        ),
        what="the queued run to succeed",
    )
    assert run["trigger"] == "manual" and run["output"] == "fired\n"
    assert api.post("/jobs/nope/run").status == 404


def test_refusals_while_a_run_is_in_flight(served: tuple[Path, Api]) -> None:
    db, api = served
    _add(db, "slow", "--exec", "sleep 3", "--manual", "--overlap", "skip")
    first = api.post("/jobs/slow/run").body["run"]
    wait_until(lambda: api.get(f"/runs/{first}").body["status"] == "running", what="running")
    skipped = api.post("/jobs/slow/run")
    assert skipped.status == 409 and "overlap skip" in skipped.error
    busy = api.delete("/jobs/slow")
    assert busy.status == 409
    assert busy.error == "job 'slow' has a run in flight: wait for it, or use --force"
    assert api.delete("/jobs/slow?force=maybe").status == 400
    assert api.delete("/jobs/slow?force=true").status == 204
    assert api.get("/jobs/slow").status == 404


def test_unknown_paths_and_methods_answer_json(served: tuple[Path, Api]) -> None:
    _, api = served
    unknown = api.get("/nothing-here")
    assert unknown.status == 404 and "no such API path" in unknown.error
    wrong = api.request("PUT", "/jobs")
    assert wrong.status == 405 and "PUT" in wrong.error
    assert "POST" in wrong.headers["Allow"]


def test_the_job_list_follows_every_change(served: tuple[Path, Api]) -> None:
    """GET /jobs keeps entries between requests: each change made elsewhere (the CLI, the
    daemon) shows in the next answer, as `list --json` shows it."""
    db, api = served
    cli_json(db, "agent", "add", "helper", "--command", "cat", "--timeout", "5m")
    _add(db, "kept", "--exec", "echo kept", "--manual")
    _add(db, "asks", "--agent", "helper", "--prompt", "hi", "--manual")

    def same(after: object = None) -> None:
        served_list, printed = api.get("/jobs").body, cli_json(db, "list")
        for ours, theirs in zip(served_list, printed, strict=True):
            differ = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs.get(k)}
            assert not differ, (after, ours["name"], differ)

    same()
    same()  # all from what was kept
    changes = [
        ("run", "kept"),
        ("run", "kept"),
        ("pause", "kept"),
        ("resume", "kept"),
        ("edit", "kept", "--description", "now described"),
        ("agent", "edit", "helper", "--timeout", "7m"),
        ("runs", "prune", "kept", "--keep", "1"),
        ("runs", "clear", "kept", "--yes"),
        ("rm", "asks", "--yes"),
    ]
    for change in changes:
        from click.testing import CliRunner

        from jobctl.cli import cli

        result = CliRunner().invoke(cli, list(change), env={"JOBCTL_DB": str(db)})
        assert result.exit_code == 0, (change, result.stderr)
        same(change)
    run = api.post("/jobs/kept/run").body["run"]
    wait_until(lambda: api.get(f"/runs/{run}").body["status"] == "succeeded", what="the run")
    same()


def _send_in_two_parts(api: Api, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """Send `body` chunked, in two parts with a pause between, as a slow client would."""
    import http.client
    import time
    from urllib.parse import urlsplit

    def parts() -> Iterator[bytes]:
        half = len(body) // 2
        yield body[:half]
        time.sleep(0.3)  # the server has the first part before the second is sent
        yield body[half:]

    address = urlsplit(api.base)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=20)
    try:
        headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
        connection.request(method, "/api/v1" + path, parts(), headers, encode_chunked=True)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_body_that_arrives_in_parts_is_read_whole(served: tuple[Path, Api]) -> None:
    db, api = served
    _add(db, "slow-body", "--exec", "true", "--manual")
    body = b" " * 200_000 + b'{"description": "sent slowly"}'
    status, text = _send_in_two_parts(api, "PATCH", "/jobs/slow-body", body)
    assert status == 200, text
    assert api.get("/jobs/slow-body").body["description"] == "sent slowly"
    status, text = _send_in_two_parts(api, "PATCH", "/jobs/slow-body", b" " * 1_100_000)
    assert status == 400 and b"larger than" in text


def test_a_patch_without_the_schedule_keeps_it(served: tuple[Path, Api]) -> None:
    db, api = served
    entry = {"name": "schedule-kept", "action": "exec", "trigger": "every", "schedule": "1h"}
    created = api.post("/jobs", {**entry, "state": "completed", "spec": {"command": "true"}})
    assert created.status == 201, created.body
    assert created.body["state"] == "completed"
    noted = api.patch("/jobs/schedule-kept", {"description": "a note"})
    assert noted.status == 200, noted.body
    assert noted.body["state"] == "completed"  # as `jobctl edit --description` leaves it
    assert noted.body == cli_json(db, "show", "schedule-kept")
    api.post("/jobs/schedule-kept/resume")
    api.post("/jobs/schedule-kept/pause")
    completed = api.patch("/jobs/schedule-kept", {"state": "completed"})
    assert completed.body["state"] == "completed", completed.body  # not quietly enabled
    moved = api.patch("/jobs/schedule-kept", {"schedule": "2h", "state": "enabled"})
    assert moved.body["schedule"] == "2h" and moved.body["next_run_at"] is not None
