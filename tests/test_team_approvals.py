"""Approval points in teams (issue 17): a run waits in status `waiting` holding nothing,
survives a daemon killed with SIGKILL, and goes on when approved, ends `failed` when
rejected and `timed_out` when nobody decides; real daemons, a real model server and a real
HTTP sink for the notifications."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_servers import AgentServer, start_agent_server
from tests.conftest import Invoke
from tests.realparts import (
    DaemonProcess,
    Sink,
    job_runs,
    make_due_now,
    run_jobctl,
    wait_until,
)


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    server = start_agent_server()
    yield server
    server.close()


def status_of(db: Path, job: str, wanted: str) -> object:
    rows = job_runs(db, job)
    return rows[0] if rows and rows[0]["status"] == wanted else None


def test_a_waiting_run_survives_kill_9_and_goes_on_when_approved(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer, sink: Sink
) -> None:
    for name in ("scanner", "writer"):
        added = jobctl("agent", "add", name, "--url", agent_server.openai_url, "--model", name)
        assert added.exit_code == 0, added.stderr
    team = jobctl(
        "team",
        "add",
        "crew",
        "--member",
        "scanner",
        "--member",
        "approve:Post this to Slack?",
        "--member",
        "writer",
    )
    assert team.exit_code == 0, team.stderr
    added = jobctl(
        "add",
        "review",
        "--team",
        "crew",
        "--prompt",
        "Summarise [{previous}]",
        "--every",
        "1h",
        "--notify-on",
        "failure",
        f"{sink.url}/approvals",
    )
    assert added.exit_code == 0, added.stderr
    make_due_now(db_path)
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        run = wait_until(lambda: status_of(db_path, "review", "waiting"), what="a waiting run")
        notices = wait_until(lambda: sink.requests_to("/approvals"), what="the notification")
    finally:
        daemon.kill()  # SIGKILL: nothing is tidied up
    first = "answer to: Summarise []"
    assert run["output"] == first and run["finished_at"] is None
    assert run["owner_pid"] is None  # no process holds it
    notice = json.loads(notices[0].body)
    assert notice["event"] == "waiting" and notice["approval"] == "Post this to Slack?"
    assert notice["answers"] == [{"step": 1, "agent": "scanner", "answer": first}]
    assert "Post this to Slack?" in notice["text"] and first in notice["text"]

    status = json.loads(run_jobctl(db_path, "status", "--json").stdout)
    assert [(w["run"], w["approval"]) for w in status["waiting"]] == [
        (run["id"], "Post this to Slack?")
    ]
    daemon = DaemonProcess(db_path).wait_ready()  # it tidies up after the killed one
    try:
        assert job_runs(db_path, "review")[0]["status"] == "waiting"  # not interrupted
        approved = run_jobctl(db_path, "runs", "approve", str(run["id"]), "--note", "looks right")
        assert approved.returncode == 0, approved.stderr
        done = wait_until(lambda: status_of(db_path, "review", "succeeded"), what="the end")
        again = run_jobctl(db_path, "runs", "approve", str(run["id"]))
    finally:
        assert daemon.stop() == 0
    assert again.returncode == 1 and "not waiting for an approval" in again.stderr
    assert done["output"] == f"answer to: Summarise [{first}]"
    steps = json.loads(done["details"])["steps"]
    assert [(s["n"], s["agent"], s["status"]) for s in steps] == [
        (1, "scanner", "succeeded"),
        (2, None, "approved"),
        (3, "writer", "succeeded"),
    ]
    assert steps[1]["note"] == "looks right"
    models = [r.body["model"] for r in agent_server.requests]
    assert models == ["scanner", "writer"]  # the scanner was not asked again
    assert len(job_runs(db_path, "review")) == 1


def test_a_rejected_run_fails_with_the_note_and_an_undecided_one_times_out(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer
) -> None:
    added = jobctl("agent", "add", "scanner", "--url", agent_server.openai_url, "--model", "x")
    assert added.exit_code == 0, added.stderr
    for team, timeout in (("patient", "24h"), ("hasty", "1s")):
        result = jobctl(
            "team",
            "add",
            team,
            "--member",
            "scanner",
            "--member",
            "approve:Go on?",
            "--member",
            "scanner",
            "--approval-timeout",
            timeout,
        )
        assert result.exit_code == 0, result.stderr
        result = jobctl("add", team, "--team", team, "--prompt", "scan", "--every", "1h")
        assert result.exit_code == 0, result.stderr
    make_due_now(db_path)
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        run = wait_until(lambda: status_of(db_path, "patient", "waiting"), what="waiting")
        rejected = run_jobctl(db_path, "runs", "reject", str(run["id"]), "--note", "not today")
        assert rejected.returncode == 0, rejected.stderr
        failed = wait_until(lambda: status_of(db_path, "patient", "failed"), what="rejected")
        timed_out = wait_until(lambda: status_of(db_path, "hasty", "timed_out"), what="timeout")
    finally:
        assert daemon.stop() == 0
    assert failed["error"] == "step 2 rejected: not today"
    assert [s["status"] for s in json.loads(failed["details"])["steps"]] == [
        "succeeded",
        "rejected",
    ]
    assert timed_out["error"].startswith("step 2: no approval after ")
    assert len(agent_server.requests) == 2  # one first step each; nothing after the approval
    shown = run_jobctl(db_path, "show", "patient", "--json")
    assert json.loads(shown.stdout)["runs_failed"] == 1


def test_approval_commands_refuse_what_does_not_wait(jobctl: Invoke, db_path: Path) -> None:
    assert jobctl("agent", "add", "a", "--command", "cat").exit_code == 0
    assert jobctl("team", "add", "t", "--member", "a", "--member", "approve:ok?").exit_code == 0
    assert jobctl("add", "j", "--team", "t", "--prompt", "hi", "--manual").exit_code == 0
    ran = run_jobctl(db_path, "run", "j")
    assert "waiting for approval: ok?" in ran.stdout
    finished = run_jobctl(db_path, "run", "--exec", "true")
    assert finished.returncode == 0
    ids = {r["status"]: r["id"] for r in json.loads(jobctl("runs", "--json").stdout)}
    refused = jobctl("runs", "approve", str(ids["succeeded"]))
    assert refused.exit_code == 1 and "not waiting for an approval" in refused.stderr
    assert jobctl("runs", "reject", "999").exit_code == 3
    assert jobctl("runs", "approve", "x").exit_code == 2
    cancelled = jobctl("runs", "cancel", str(ids["waiting"]))
    assert cancelled.exit_code == 1 and "runs reject" in cancelled.stderr
    rejected = jobctl("runs", "reject", str(ids["waiting"]), "--note", "no")
    assert rejected.exit_code == 0, rejected.stderr
    twice = jobctl("runs", "approve", str(ids["waiting"]))
    assert twice.exit_code == 1 and "rejected already" in twice.stderr
    # an ad hoc run cannot wait: no daemon could take it up again
    adhoc = run_jobctl(db_path, "run", "--team", "t", "--prompt", "hi")
    assert adhoc.returncode == 1 and "an ad hoc run cannot wait" in adhoc.stderr
    bad = [
        ("team", "add", "u", "--member", "approve:"),
        ("team", "add", "u", "--member", "approve:only"),
        ("team", "add", "u", "--member", "a", "--approval-timeout", "soon"),
    ]
    for args in bad:
        result = jobctl(*args)
        assert result.exit_code == 2, (args, result.stderr)
