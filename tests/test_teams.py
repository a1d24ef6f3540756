"""Teams (issue 17): `jobctl team ...`, `--team` on jobs, and team runs against real local
model servers (one that answers, one that streams, one that refuses), fired by a real daemon
and by `jobctl run`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_servers import AgentServer, fake_agent_command, start_agent_server
from tests.conftest import Invoke, dump_database
from tests.realparts import DaemonProcess, job_runs, make_due_now, query, run_jobctl, wait_until
from tests.stream_server import USAGE_IN, USAGE_OUT, StreamServer


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    server = start_agent_server()
    yield server
    server.close()


@pytest.fixture
def stream_server() -> Iterator[StreamServer]:
    with StreamServer() as server:
        yield server


def add_agents(jobctl: Invoke, answers: AgentServer, streams: StreamServer) -> None:
    for name, url, model in (
        ("answerer", answers.openai_url, "echo"),
        ("streamer", streams.openai_url, "words"),
        ("refuser", answers.openai_url, "refuse"),
    ):
        result = jobctl("agent", "add", name, "--url", url, "--model", model)
        assert result.exit_code == 0, result.stderr


# ------------------------------------------------------------------------------ the commands


def test_team_commands_add_show_list_edit_and_rm(jobctl: Invoke, db_path: Path) -> None:
    assert jobctl("agent", "add", "a", "--command", fake_agent_command()).exit_code == 0
    assert jobctl("agent", "add", "b", "--command", fake_agent_command()).exit_code == 0
    added = jobctl("team", "add", "crew", "--member", "a:Find the bugs.", "--member", "b", "--json")
    assert added.exit_code == 0, added.stderr
    data = json.loads(added.stdout)
    assert data["name"] == "crew"
    assert data["members"] == [
        {"agent": "a", "role": "Find the bugs.", "approve": None},
        {"agent": "b", "role": "", "approve": None},
    ]
    shown = jobctl("team", "show", "crew")
    assert "step 1:  a: Find the bugs." in shown.stdout
    assert "step 2:  b" in shown.stdout

    job = jobctl("add", "review", "--team", "crew", "--prompt", "Check it", "--manual")
    assert job.exit_code == 0, job.stderr
    spec = json.loads(jobctl("show", "review", "--json").stdout)["spec"]
    assert spec["team"] == "crew" and spec["agent"] == ""
    listed = json.loads(jobctl("team", "list", "--json").stdout)
    assert [(t["name"], t["jobs"]) for t in listed] == [("crew", ["review"])]

    edited = jobctl("team", "edit", "crew", "--member", "b:Summarise.", "--json")
    assert edited.exit_code == 0, edited.stderr
    assert [m["agent"] for m in json.loads(edited.stdout)["members"]] == ["b"]

    # an agent in a team stays; a team a job uses stays unless --force, which pauses the job
    refused = jobctl("agent", "rm", "b")
    assert refused.exit_code == 1 and "member of team crew" in refused.stderr
    refused = jobctl("team", "rm", "crew")
    assert refused.exit_code == 1 and "used by job review" in refused.stderr
    removed = jobctl("team", "rm", "crew", "--force")
    assert removed.exit_code == 0, removed.stderr
    assert "paused job 'review'" in removed.stderr
    assert json.loads(jobctl("show", "review", "--json").stdout)["state"] == "paused"
    assert json.loads(jobctl("team", "list", "--json").stdout) == []


def test_bad_team_input_changes_nothing(jobctl: Invoke, db_path: Path) -> None:
    assert jobctl("agent", "add", "a", "--command", fake_agent_command()).exit_code == 0
    assert jobctl("team", "add", "crew", "--member", "a").exit_code == 0
    before = dump_database(db_path)
    cases = [
        (("team", "add", "crew", "--member", "a"), 2, "already exists"),
        (("team", "add", "other", "--member", "nobody"), 3, "no agent named 'nobody'"),
        (("team", "add", "Bad Name", "--member", "a"), 2, "invalid team name"),
        (("team", "add", "other", "--member", ":role only"), 2, "invalid --member"),
        (("team", "show", "crow"), 3, "did you mean 'crew'"),
        (("add", "j", "--team", "nope", "--prompt", "x", "--manual"), 3, "no team named 'nope'"),
        (("add", "j", "--team", "crew", "--agent", "a", "--prompt", "x", "--manual"), 2, ""),
        (("add", "j", "--team", "crew", "--manual"), 2, "--prompt"),
    ]
    for args, code, message in cases:
        result = jobctl(*args)
        assert result.exit_code == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert dump_database(db_path) == before


def test_team_jobs_export_and_apply_back(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    assert jobctl("agent", "add", "a", "--command", fake_agent_command()).exit_code == 0
    assert jobctl("team", "add", "crew", "--member", "a").exit_code == 0
    assert jobctl("add", "review", "--team", "crew", "--prompt", "x", "--manual").exit_code == 0
    exported = jobctl("export")
    assert exported.exit_code == 0, exported.stderr
    assert 'team = "crew"' in exported.stdout
    path = tmp_path / "jobs.toml"
    path.write_text(exported.stdout)
    applied = jobctl("apply", "-f", str(path))
    assert applied.exit_code == 0, applied.stderr
    path.write_text(exported.stdout.replace('team = "crew"', 'team = "gone"'))
    refused = jobctl("apply", "-f", str(path))
    assert refused.exit_code == 3 and "no team named 'gone'" in refused.stderr


# ----------------------------------------------------------------------------- team runs


def test_a_team_of_three_runs_in_order_and_a_refusal_fails_its_step(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer, stream_server: StreamServer
) -> None:
    add_agents(jobctl, agent_server, stream_server)
    assert (
        jobctl(
            "team", "add", "pair", "--member", "answerer:You scan.", "--member", "streamer"
        ).exit_code
        == 0
    )
    assert (
        jobctl(
            "team",
            "add",
            "trio",
            "--member",
            "answerer:You scan.",
            "--member",
            "streamer",
            "--member",
            "refuser:You post.",
        ).exit_code
        == 0
    )
    prompt = "Look at {job}. Before: [{previous}] First: [{step:1}]"
    for name, team in (("good", "pair"), ("bad", "trio")):
        result = jobctl("add", name, "--team", team, "--prompt", prompt, "--every", "1h")
        assert result.exit_code == 0, result.stderr
    make_due_now(db_path)
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        good = wait_until(lambda: _finished(db_path, "good"), what="the pair's run")
        bad = wait_until(lambda: _finished(db_path, "bad"), what="the trio's run")
    finally:
        assert daemon.stop() == 0

    first = "answer to: You scan.\n\nLook at good. Before: [] First: []"
    assert good["status"] == "succeeded", good["error"]
    second_prompt = f"Look at good. Before: [{first}] First: [{first}]"
    assert good["output"] == f"answer to: {second_prompt}"
    steps = json.loads(good["details"])["steps"]
    assert [(s["n"], s["agent"], s["status"]) for s in steps] == [
        (1, "answerer", "succeeded"),
        (2, "streamer", "succeeded"),
    ]
    assert steps[0]["prompt"] == "You scan.\n\nLook at good. Before: [] First: []"
    assert steps[0]["answer"] == first
    assert (steps[0]["model"], steps[0]["tokens_in"], steps[0]["tokens_out"]) == (
        "echo-served",
        11,
        7,
    )
    assert steps[0]["finish_reason"] == "stop"
    assert steps[1]["prompt"] == second_prompt
    assert (steps[1]["tokens_in"], steps[1]["tokens_out"]) == (USAGE_IN, USAGE_OUT)
    assert all(s["latency_ms"] is not None and s["started_at"] for s in steps)
    # the run's usage is its steps' together, as one agent run's is
    assert json.loads(good["details"])["usage"] == {
        "prompt_tokens": 11 + USAGE_IN,
        "completion_tokens": 7 + USAGE_OUT,
        "total_tokens": 18 + USAGE_IN + USAGE_OUT,
    }
    assert stream_server.requests[-1]["stream"] is True  # the streamer streamed

    # every step streamed as pieces of the one answer stream, a header before each
    pieces = query(
        db_path, "SELECT stream, text FROM run_output WHERE run_id = ? ORDER BY seq", good["id"]
    )
    streamed = "".join(row["text"] for row in pieces)
    assert {row["stream"] for row in pieces} == {"answer"}
    assert streamed.index("step 1/2: answerer") < streamed.index(first)
    assert streamed.index("step 2/2: streamer") < streamed.index(good["output"])

    assert bad["status"] == "failed"
    assert bad["error"].startswith("step 3 (refuser) failed: ")
    bad_steps = json.loads(bad["details"])["steps"]
    assert [(s["agent"], s["status"]) for s in bad_steps] == [
        ("answerer", "succeeded"),
        ("streamer", "succeeded"),
        ("refuser", "failed"),
    ]
    assert bad_steps[2]["finish_reason"] == "content_filter"

    # runs show shows the steps; runs --json carries them
    shown = run_jobctl(db_path, "runs", "show", str(bad["id"]))
    assert "steps:" in shown.stdout and "3. refuser: failed" in shown.stdout
    listed = json.loads(run_jobctl(db_path, "runs", "bad", "--json").stdout)
    assert [s["agent"] for s in listed[0]["steps"]] == ["answerer", "streamer", "refuser"]


def test_an_ad_hoc_team_run_streams_its_steps_and_names_the_failed_one(
    jobctl: Invoke, db_path: Path
) -> None:
    assert jobctl("agent", "add", "upper", "--command", "tr a-z A-Z").exit_code == 0
    assert jobctl("agent", "add", "silent", "--command", "true").exit_code == 0
    assert jobctl("team", "add", "duo", "--member", "upper", "--member", "silent").exit_code == 0
    result = run_jobctl(db_path, "run", "--team", "duo", "--prompt", "hello")
    assert result.returncode == 1
    assert "step 1/2: upper" in result.stdout and "HELLO" in result.stdout
    assert "step 2 (silent) failed: empty answer" in result.stderr
    rows = query(db_path, "SELECT status, error FROM runs")
    assert [(r["status"], r["error"]) for r in rows] == [
        ("failed", "step 2 (silent) failed: empty answer")
    ]


def _finished(db: Path, job: str) -> object:
    rows = [r for r in job_runs(db, job) if r["status"] not in ("running", "queued")]
    return rows[0] if rows else None


def test_teams_are_exported_and_applied_to_another_database(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    assert jobctl("agent", "add", "a", "--command", fake_agent_command()).exit_code == 0
    assert jobctl("agent", "add", "unused", "--command", fake_agent_command()).exit_code == 0
    assert jobctl("team", "add", "crew", "--member", "a:Role: with colon").exit_code == 0
    assert jobctl("add", "review", "--team", "crew", "--prompt", "x", "--manual").exit_code == 0
    exported = jobctl("export", "review")
    assert exported.exit_code == 0, exported.stderr
    assert "[[teams]]" in exported.stdout and 'name = "unused"' not in exported.stdout
    path = tmp_path / "jobs.toml"
    path.write_text(exported.stdout)
    other = tmp_path / "other.db"
    applied = run_jobctl(other, "apply", "-f", str(path), "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["teams"]["added"] == ["crew"]
    shown = json.loads(run_jobctl(other, "team", "show", "crew", "--json").stdout)
    assert shown["members"] == [{"agent": "a", "role": "Role: with colon", "approve": None}]
    assert shown["jobs"] == ["review"]
    again = run_jobctl(other, "apply", "-f", str(path), "--json")
    assert json.loads(again.stdout)["teams"]["unchanged"] == ["crew"]
