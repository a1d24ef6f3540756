"""Ad hoc runs: `jobctl run --exec/--url/--agent` fires once, here, and leaves a run with no
job behind (`runs --adhoc`), never a job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_servers import AgentServer, start_agent_server
from tests.conftest import BOTH_STORES, Invoke, create_database, dump_database
from tests.realparts import (
    DaemonProcess,
    Reply,
    Sink,
    jobctl_command,
    make_due_now,
    query,
    run_jobctl,
    wait_until,
)


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    server = start_agent_server()
    yield server
    server.close()


def adhoc_rows(db: Path) -> list:
    return query(db, "SELECT * FROM runs WHERE job_id IS NULL ORDER BY id")


def no_jobs(db: Path) -> bool:
    return query(db, "SELECT count(*) AS n FROM jobs")[0]["n"] == 0


@BOTH_STORES
def test_exec_runs_once_here_and_leaves_a_run_with_no_job(db_path: Path, tmp_path: Path) -> None:
    result = run_jobctl(
        db_path,
        "run",
        "--exec",
        'echo "$GREETING from $PWD"; echo oops >&2',
        "--env",
        "GREETING=hello",
        "--cwd",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hello from {tmp_path}\noops\n"
    [row] = adhoc_rows(db_path)
    assert "ad hoc run" in result.stderr and f"run {row['id']}" in result.stderr
    assert (row["trigger"], row["status"], row["exit_code"]) == ("manual", "succeeded", 0)
    action = json.loads(row["adhoc"])
    assert action["action"] == "exec"
    assert action["spec"]["command"] == 'echo "$GREETING from $PWD"; echo oops >&2'
    assert action["spec"]["env"] == {"GREETING": "hello"}
    assert no_jobs(db_path)


def test_a_failing_exec_retries_here_and_exits_1(db_path: Path) -> None:
    result = run_jobctl(
        db_path, "run", "--exec", "echo no; exit 7", "--retries", "2", "--backoff", "100ms"
    )
    assert result.returncode == 1
    assert result.stderr.count("ad hoc run") == 3
    rows = adhoc_rows(db_path)
    assert [(r["trigger"], r["attempt"], r["status"], r["exit_code"]) for r in rows] == [
        ("manual", 1, "failed", 7),
        ("retry", 2, "failed", 7),
        ("retry", 3, "failed", 7),
    ]
    assert len({r["adhoc"] for r in rows}) == 1  # every attempt keeps the same action
    assert no_jobs(db_path)


def test_timeout_applies_to_an_ad_hoc_run(db_path: Path) -> None:
    started = time.monotonic()
    result = run_jobctl(db_path, "run", "--exec", "sleep 30", "--timeout", "1s", "--json")
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    run = json.loads(result.stdout)
    assert (run["job"], run["status"]) == (None, "timed_out")
    assert run["adhoc"]["policies"]["timeout"] == 1


@BOTH_STORES
def test_url_sends_the_request_with_the_run_headers(db_path: Path, sink: Sink) -> None:
    sink.replies["/hook"] = Reply(status=201, body=b"made it")
    result = run_jobctl(
        db_path,
        "run",
        "--url",
        f"{sink.url}/hook",
        "--json-body",
        '{"a": 1}',
        "--header",
        "X-Trace: t1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert (run["job"], run["http_status"], run["output"]) == (None, 201, "made it")
    assert run["adhoc"]["action"] == "http"
    [request] = sink.requests_to("/hook")
    assert request.method == "POST" and json.loads(request.body) == {"a": 1}
    assert request.headers["X-Trace"] == "t1"
    assert request.headers["X-Jobctl-Run"] == str(run["id"])
    assert no_jobs(db_path)


def test_url_that_fails_exits_1(db_path: Path, sink: Sink) -> None:
    sink.replies["/down"] = Reply(status=503)
    result = run_jobctl(db_path, "run", "--url", f"{sink.url}/down", "--expect", "200")
    assert result.returncode == 1
    [row] = adhoc_rows(db_path)
    assert (row["status"], row["http_status"]) == ("failed", 503)


def test_agent_prompt_is_answered_by_an_openai_compatible_server(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer
) -> None:
    added = jobctl("agent", "add", "local", "--url", agent_server.openai_url, "--model", "echo")
    assert added.exit_code == 0, added.stderr
    result = run_jobctl(db_path, "run", "--agent", "local", "--prompt", "say hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "answer to: say hi\n"
    assert agent_server.last("openai").body["messages"][-1]["content"] == "say hi"
    [row] = adhoc_rows(db_path)
    spec = json.loads(row["adhoc"])["spec"]
    assert (spec["agent"], spec["prompt"]) == ("local", "say hi")
    assert no_jobs(db_path)


def test_an_ad_hoc_agent_run_takes_a_model_and_a_token_limit(
    jobctl: Invoke, db_path: Path, agent_server: AgentServer
) -> None:
    jobctl("agent", "add", "local", "--url", agent_server.openai_url, "--model", "echo")
    result = run_jobctl(
        db_path,
        "run",
        "--agent",
        "local",
        "--prompt",
        "hi",
        "--model",
        "other",
        "--max-tokens",
        "7",
    )
    assert result.returncode == 0, result.stderr
    body = agent_server.last("openai").body
    assert (body["model"], body["max_tokens"]) == ("other", 7)
    refused = run_jobctl(db_path, "run", "--exec", "true", "--model", "other")
    assert refused.returncode == 2 and "--model" in refused.stderr


@BOTH_STORES
def test_runs_adhoc_lists_only_runs_with_no_job(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "kept", "--exec", "true", "--manual")
    assert run_jobctl(db_path, "run", "kept").returncode == 0
    assert run_jobctl(db_path, "run", "--exec", "echo once").returncode == 0
    everything = json.loads(jobctl("runs", "--json").stdout)
    assert [run["job"] for run in everything] == [None, "kept"]
    assert everything[1]["adhoc"] is None
    adhoc = json.loads(jobctl("runs", "--adhoc", "--json").stdout)
    assert [(run["job"], run["output"]) for run in adhoc] == [(None, "once\n")]
    table = jobctl("runs", "--adhoc").stdout.splitlines()
    assert len(table) == 2 and table[1].split()[:3] == [str(adhoc[0]["id"]), "-", "manual"]
    shown = jobctl("runs", "show", str(adhoc[0]["id"])).stdout
    assert "job:           - (ad hoc exec run)" in shown
    assert "command: echo once" in shown
    refused = jobctl("runs", "kept", "--adhoc")
    assert refused.exit_code == 2


@BOTH_STORES
@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("run",), 2, "give a job NAME, or an action"),
        (("run", "backup", "--exec", "true"), 2, "--exec is for an ad hoc run"),
        (("run", "--exec", "true", "--queue"), 2, "--queue"),
        (("run", "--timeout", "5s"), 2, "needs an action"),
        (("run", "--exec", "true", "--url", "http://x"), 2, ""),
        (("run", "--exec", "true", "--timeout", "soon"), 2, "--timeout"),
        (("run", "--url", "ftp://x"), 2, "--url"),
        (("run", "--agent", "nobody", "--prompt", "hi"), 3, "no agent named 'nobody'"),
    ],
)
def test_bad_ad_hoc_runs_are_refused_and_change_nothing(
    jobctl: Invoke, db_path: Path, args: tuple[str, ...], code: int, says: str
) -> None:
    jobctl("add", "backup", "--exec", "true", "--manual")
    before = dump_database(db_path)
    result = jobctl(*args)
    assert result.exit_code == code, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert dump_database(db_path) == before


def test_bad_input_creates_no_database(jobctl: Invoke, db_path: Path) -> None:
    result = jobctl("run", "--exec", "true", "--retries", "many")
    assert result.exit_code == 2 and "--retries" in result.stderr
    assert not db_path.exists()


def test_a_killed_ad_hoc_run_is_interrupted_and_never_retried(db_path: Path) -> None:
    create_database(db_path)
    process = subprocess.Popen(
        jobctl_command("run", "--exec", "sleep 30", "--retries", "3"),
        env={**os.environ, "JOBCTL_DB": str(db_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: [r for r in adhoc_rows(db_path) if r["pgid"]],
            what="the command to start",
        )
    finally:
        process.kill()
        process.wait()
    try:
        listed = run_jobctl(db_path, "runs", "--adhoc", "--json")  # tidies orphans on its way
        [run] = json.loads(listed.stdout)
        assert run["status"] == "interrupted" and run["job"] is None
        assert len(adhoc_rows(db_path)) == 1  # no retry queued for anyone
        [row] = adhoc_rows(db_path)
        wait_until(lambda: not group_alive(row["pgid"]), what="its command to be ended")
    finally:
        for row in adhoc_rows(db_path):
            if row["pgid"]:
                try:
                    os.killpg(row["pgid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_interrupts_an_ad_hoc_run_and_keeps_its_output(
    db_path: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    process = subprocess.Popen(
        jobctl_command("run", "--exec", f"echo so far; touch {started}; sleep 30"),
        env={**os.environ, "JOBCTL_DB": str(db_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(started.exists, what="the command to start")
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    [row] = adhoc_rows(db_path)
    assert (row["status"], row["output"]) == ("interrupted", "so far\n")
    assert no_jobs(db_path)


def test_a_running_daemon_lives_beside_ad_hoc_runs(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "beat", "--exec", "echo beat", "--every", "1h")
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        process = subprocess.Popen(
            jobctl_command("run", "--exec", "sleep 1; echo slow"),
            env={**os.environ, "JOBCTL_DB": str(db_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: adhoc_rows(db_path), what="the ad hoc run to start")
        status = json.loads(run_jobctl(db_path, "status", "--json").stdout)
        assert status["daemon"]["running"]
        make_due_now(db_path, "beat")
        wait_until(
            lambda: query(db_path, "SELECT 1 FROM runs WHERE status = 'succeeded' AND job_id"),
            what="the job to fire beside it",
        )
        out, err = process.communicate(timeout=20)
        assert (process.returncode, out) == (0, "slow\n"), err
        [row] = adhoc_rows(db_path)
        assert row["status"] == "succeeded"
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.log() and "ERROR" not in daemon.log()


def test_prune_keeps_the_newest_ad_hoc_runs(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "kept", "--exec", "true", "--manual")
    assert run_jobctl(db_path, "run", "kept").returncode == 0
    for word in ("one", "two", "three"):
        assert run_jobctl(db_path, "run", "--exec", f"echo {word}").returncode == 0
    assert jobctl("runs", "prune", "kept", "--keep", "1").stdout == "removed 0 runs\n"
    assert len(adhoc_rows(db_path)) == 3  # a job's prune leaves ad hoc runs alone
    assert jobctl("runs", "prune", "--keep", "1").stdout == "removed 2 runs\n"
    [left] = adhoc_rows(db_path)
    assert left["output"] == "three\n"
    assert len(query(db_path, "SELECT id FROM runs WHERE job_id IS NOT NULL")) == 1
