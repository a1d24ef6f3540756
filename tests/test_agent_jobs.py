"""Scheduled prompts fired by a real daemon at a local OpenAI-compatible server."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_servers import AgentServer, fake_agent_command, start_agent_server
from tests.conftest import Invoke
from tests.realparts import (
    DaemonProcess,
    Reply,
    Sink,
    job_runs,
    query,
    run_jobctl,
    wait_until,
)

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    server = start_agent_server()
    yield server
    server.close()


def finished(db: Path, job: str, count: int) -> list:
    # Runs that executed: a slot skipped while a slow answer was in flight (a loaded machine)
    # is not an answer.
    rows = [r for r in job_runs(db, job) if r["status"] not in ("running", "queued", "skipped")]
    return rows if len(rows) >= count else []


def test_scheduled_prompt_records_answer_usage_and_last_output(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer, sink: Sink
) -> None:
    assert (
        jobctl(
            "agent",
            "add",
            "local",
            "--url",
            agent_server.openai_url,
            "--model",
            "echo",
            "--api-key-env",
            "TEST_AGENT_KEY",
        ).exit_code
        == 0
    )
    result = jobctl(
        "add",
        "digest",
        "--agent",
        "local",
        "--every",
        "1s",
        "--prompt",
        "Report for {job}; before: [{last_output}] {{literal}}",
        "--deliver",
        f"{sink.url}/slack",
    )
    assert result.exit_code == 0, result.stderr
    daemon = DaemonProcess(db_path, env={"TEST_AGENT_KEY": KEY}).wait_ready()
    try:
        rows = wait_until(lambda: finished(db_path, "digest", 2), what="two answers")
    finally:
        assert daemon.stop() == 0
    first, second = rows[0], rows[1]
    assert first["status"] == "succeeded"
    assert first["output"] == "answer to: Report for digest; before: [] {literal}"
    assert (
        second["output"] == f"answer to: Report for digest; before: [{first['output']}] {{literal}}"
    )
    details = json.loads(first["details"])
    assert details["agent"] == "local" and details["model"]
    assert details["usage"]["total_tokens"] > 0 and details["latency_ms"] is not None
    assert details["delivery"]["ok"] is True
    delivered = json.loads(sink.requests_to("/slack")[0].body)
    assert delivered["job"] == "digest" and delivered["text"].startswith("answer to:")
    assert delivered["content"] == delivered["text"]
    assert agent_server.last("openai").headers["authorization"] == f"Bearer {KEY}"
    assert KEY.encode() not in db_path.read_bytes()
    shown = run_jobctl(db_path, "runs", "show", str(first["id"]))
    assert "answer to: Report for digest" in shown.stdout and KEY not in shown.stdout


def test_agent_failures_are_failed_runs_and_delivery_failure_keeps_success(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer, sink: Sink
) -> None:
    sink.replies["/down"] = Reply(status=500)
    jobctl("agent", "add", "refuser", "--url", agent_server.openai_url, "--model", "refuse")
    jobctl("agent", "add", "fine", "--url", agent_server.openai_url, "--model", "echo")
    jobctl("agent", "add", "script", "--command", fake_agent_command("--exit", "3"))
    jobctl("add", "refused", "--agent", "refuser", "--prompt", "hi", "--manual")
    jobctl(
        "add",
        "delivered",
        "--agent",
        "fine",
        "--prompt",
        "hi",
        "--manual",
        "--deliver",
        f"{sink.url}/down",
    )
    jobctl("add", "crashing", "--agent", "script", "--prompt", "hi", "--manual")
    refused = run_jobctl(db_path, "run", "refused", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["status"] == "failed"
    assert "refused" in json.loads(refused.stdout)["error"]
    delivered = run_jobctl(db_path, "run", "delivered", "--json")
    assert delivered.returncode == 0
    run = query(
        db_path, "SELECT details FROM runs WHERE id = ?", json.loads(delivered.stdout)["id"]
    )[0]
    delivery = json.loads(run["details"])["delivery"]
    assert delivery["ok"] is False and "500" in delivery["error"]
    crashing = run_jobctl(db_path, "run", "crashing", "--json")
    assert crashing.returncode == 1 and "exit code 3" in json.loads(crashing.stdout)["error"]


def test_webhook_payload_reaches_the_prompt_but_never_a_secret(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer
) -> None:
    jobctl("agent", "add", "local", "--url", agent_server.openai_url, "--model", "echo")
    jobctl(
        "add",
        "triage",
        "--agent",
        "local",
        "--manual",
        "--overlap",
        "queue",
        "--prompt",
        "Triage this push: {payload}",
    )
    secret = json.loads(jobctl("hook", "enable", "triage", "--json").stdout)["secret"]
    daemon = DaemonProcess(
        db_path, "--listen", "127.0.0.1:0", env={"TOP_SECRET": "hunter2-value"}
    ).wait_ready()
    try:
        base = wait_until(
            lambda: query(db_path, "SELECT listen FROM daemon WHERE listen IS NOT NULL")
        )[0][0]
        body = b'{"ref": "main", "sneaky": "${TOP_SECRET}"}'
        request = urllib.request.Request(
            f"{base}/hooks/triage",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {secret}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        [row] = wait_until(lambda: finished(db_path, "triage", 1), what="the answer")
    finally:
        assert daemon.stop() == 0
    assert row["trigger"] == "webhook" and row["status"] == "succeeded"
    assert (
        row["output"] == 'answer to: Triage this push: {"ref": "main", "sneaky": "${TOP_SECRET}"}'
    )
    assert "hunter2" not in json.dumps(agent_server.last("openai").body)


def test_an_agents_timeout_is_the_jobs_when_the_job_sets_none(
    jobctl: Invoke, db_path: Path
) -> None:
    from jobctl.engine import Claim, start_manual
    from jobctl.runs import Owner
    from jobctl.store import open_store
    from jobctl.timeutil import utcnow

    assert (
        jobctl(
            "agent",
            "add",
            "slow",
            "--command",
            fake_agent_command("--sleep", "30"),
            "--timeout",
            "5m",
        ).exit_code
        == 0
    )
    assert jobctl("add", "ask", "--agent", "slow", "--prompt", "hi", "--manual").exit_code == 0
    assert (
        jobctl(
            "add", "own", "--agent", "slow", "--prompt", "hi", "--manual", "--timeout", "1m"
        ).exit_code
        == 0
    )

    def shown(name: str) -> float:
        return json.loads(jobctl("show", name, "--json").stdout)["policies"]["timeout"]

    assert shown("ask") == 300.0 and shown("own") == 60.0
    assert "timeout 5m," in jobctl("show", "ask").stdout
    listed = {item["name"]: item for item in json.loads(jobctl("list", "--json").stdout)}
    assert listed["ask"]["policies"]["timeout"] == 300.0
    assert listed["own"]["policies"]["timeout"] == 60.0
    edited = json.loads(jobctl("edit", "ask", "--description", "d", "--json").stdout)
    assert edited["policies"]["timeout"] == 300.0

    # the agent's timeout changes: so does every job that leans on it, and its runs
    assert jobctl("agent", "edit", "slow", "--timeout", "1s").exit_code == 0
    assert shown("ask") == 1.0 and shown("own") == 60.0
    result = jobctl("run", "ask")
    assert result.exit_code == 1
    assert "timed out after 1s" in result.stdout + result.stderr

    claim = start_manual(open_store(db_path), "ask", utcnow(), Owner.this_process())
    assert isinstance(claim, Claim) and claim.timeout == 1.0  # the claim says what runs use
