"""`jobctl run`: fire now in the CLI process, or through the daemon with --queue."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import BOTH_STORES, Invoke
from tests.realparts import (
    DaemonProcess,
    Reply,
    Sink,
    job_runs,
    jobctl_command,
    query,
    run_jobctl,
    wait_until,
)


@BOTH_STORES
def test_run_succeeds_prints_output_and_records_a_manual_run(
    jobctl: Invoke, db_path: Path, sink: Sink
) -> None:
    sink.replies["/hello"] = Reply(body=b"hello from the sink")
    jobctl("add", "hello", "--url", f"{sink.url}/hello", "--every", "1h")
    result = run_jobctl(db_path, "run", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the sink\n"
    assert "succeeded" in result.stderr
    [row] = job_runs(db_path, "hello")
    assert (row["trigger"], row["status"], row["http_status"]) == ("manual", "succeeded", 200)
    assert sink.requests_to("/hello")[0].headers["X-Jobctl-Run"] == str(row["id"])


@BOTH_STORES
def test_run_of_a_failing_job_exits_1_after_its_retries(
    jobctl: Invoke, db_path: Path, sink: Sink
) -> None:
    sink.replies["/down"] = Reply(status=502)
    jobctl(
        "add",
        "down",
        "--url",
        f"{sink.url}/down",
        "--manual",
        "--retries",
        "2",
        "--backoff",
        "100ms",
    )
    result = run_jobctl(db_path, "run", "down", "--json")
    assert result.returncode == 1
    assert result.stderr.count("failed") == 3
    assert json.loads(result.stdout)["attempt"] == 3
    rows = job_runs(db_path, "down")
    assert [(r["trigger"], r["attempt"], r["status"]) for r in rows] == [
        ("manual", 1, "failed"),
        ("retry", 2, "failed"),
        ("retry", 3, "failed"),
    ]
    assert len(sink.requests_to("/down")) == 3


@BOTH_STORES
def test_run_works_on_paused_jobs_and_exec_exit_codes(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "fails", "--exec", "sh -c 'echo no; exit 7'", "--every", "1h", "--paused")
    result = run_jobctl(db_path, "run", "fails", "--json")
    assert result.returncode == 1
    run = json.loads(result.stdout)
    assert (run["status"], run["exit_code"], run["output"]) == ("failed", 7, "no\n")
    assert set(run) >= {
        "id",
        "job",
        "trigger",
        "status",
        "attempt",
        "scheduled_for",
        "started_at",
        "finished_at",
        "duration_ms",
        "http_status",
        "exit_code",
        "error",
        "output",
    }


def test_manual_run_respects_overlap_skip(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    jobctl("add", "slow", "--exec", f"touch {started}; sleep 30", "--shell", "--manual")
    first = subprocess.Popen(
        jobctl_command("run", "slow"),
        env={"JOBCTL_DB": str(db_path), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(started.exists, what="the first run to start")
        second = run_jobctl(db_path, "run", "slow")
        assert second.returncode == 1
        assert "skipped" in second.stderr
        statuses = [r["status"] for r in job_runs(db_path, "slow")]
        assert statuses == ["running", "skipped"]
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(20)
    rows = job_runs(db_path, "slow")
    assert [r["status"] for r in rows] == ["interrupted", "skipped"]


def test_killed_run_is_marked_interrupted_by_the_next_jobctl(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    jobctl("add", "victim", "--exec", f"touch {started}; sleep 30", "--shell", "--manual")
    process = subprocess.Popen(
        jobctl_command("run", "victim"),
        env={"JOBCTL_DB": str(db_path), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(started.exists, what="the run to start")
    process.kill()
    process.wait()
    assert [r["status"] for r in job_runs(db_path, "victim")] == ["running"]
    jobctl("add", "other", "--exec", "true", "--manual")
    assert run_jobctl(db_path, "run", "other").returncode == 0
    assert [r["status"] for r in job_runs(db_path, "victim")] == ["interrupted"]


def test_queue_needs_a_daemon(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "q", "--exec", "true", "--manual")
    result = run_jobctl(db_path, "run", "q", "--queue")
    assert result.returncode == 4
    assert "no daemon" in result.stderr
    assert job_runs(db_path, "q") == []


@BOTH_STORES
def test_queue_and_wait_through_the_daemon(jobctl: Invoke, db_path: Path, sink: Sink) -> None:
    jobctl("add", "queued", "--url", f"{sink.url}/queued", "--manual")
    daemon = DaemonProcess(db_path)
    try:
        daemon.wait_ready()
        wait_until(lambda: query(db_path, "SELECT 1 FROM daemon"), what="the heartbeat")
        start = time.monotonic()
        result = run_jobctl(db_path, "run", "queued", "--queue", "--wait", "--json")
        assert result.returncode == 0, result.stderr
        run = json.loads(result.stdout)
        assert (run["trigger"], run["status"]) == ("manual", "succeeded")
        assert time.monotonic() - start < 10
        owner = query(db_path, "SELECT owner_pid FROM runs WHERE id = ?", run["id"])[0][0]
        assert owner == daemon.pid
    finally:
        assert daemon.stop() == 0


def test_queue_and_wait_prints_the_outcome_of_a_failing_run(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "broken", "--url", "http://127.0.0.1:9/nothing-listens", "--manual")
    jobctl("add", "noisy", "--exec", "echo some output; exit 3", "--manual")
    daemon = DaemonProcess(db_path)
    try:
        daemon.wait_ready()
        wait_until(lambda: query(db_path, "SELECT 1 FROM daemon"), what="the heartbeat")
        result = run_jobctl(db_path, "run", "broken", "--queue", "--wait")
        assert result.returncode == 1
        [row] = job_runs(db_path, "broken")
        assert f"run {row['id']} of broken · attempt 1 · failed · " in result.stderr
        assert "cannot connect" in result.stderr
        result = run_jobctl(db_path, "run", "noisy", "--queue", "--wait")
        assert result.returncode == 1
        assert result.stdout == "some output\n"
        assert "attempt 1 · failed · exit 3 · " in result.stderr
    finally:
        assert daemon.stop() == 0


@BOTH_STORES
def test_unknown_job_and_bad_flags(jobctl: Invoke, db_path: Path) -> None:
    result = jobctl("run", "ghost")
    assert result.exit_code == 3
    jobctl("add", "real", "--exec", "true", "--manual")
    result = jobctl("run", "real", "--wait")
    assert result.exit_code == 2
    assert query(db_path, "SELECT count(*) FROM runs")[0][0] == 0


def test_exec_runs_through_sh_by_default_as_cron_does(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    jobctl("add", "exits", "--exec", "echo a; exit 3", "--every", "1m")
    jobctl("add", "home", "--exec", "echo $HOME", "--manual")
    jobctl("add", "guarded", "--exec", f"test -d {tmp_path}/nope && echo made", "--manual")
    env = {"HOME": str(tmp_path)}
    exits = run_jobctl(db_path, "run", "exits", "--json", env=env)
    assert exits.returncode == 1
    run = json.loads(exits.stdout)
    assert (run["status"], run["exit_code"], run["output"]) == ("failed", 3, "a\n")
    home = run_jobctl(db_path, "run", "home", "--json", env=env)
    assert home.returncode == 0, home.stderr
    assert json.loads(home.stdout)["output"] == f"{tmp_path}\n"
    guarded = run_jobctl(db_path, "run", "guarded", "--json", env=env)
    run = json.loads(guarded.stdout)
    assert (guarded.returncode, run["exit_code"], run["output"]) == (1, 1, "")
    snapshot = query(db_path, "SELECT snapshot FROM runs WHERE id = ?", run["id"])[0][0]
    assert json.loads(snapshot)["shell"] is True


def test_exec_no_shell_runs_the_words_directly(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    jobctl("add", "plain", "--exec", "echo $HOME; exit 3", "--no-shell", "--manual")
    env = {"HOME": str(tmp_path)}
    direct = run_jobctl(db_path, "run", "plain", "--json", env=env)
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["output"] == "$HOME; exit 3\n"
    assert jobctl("edit", "plain", "--shell").exit_code == 0
    shelled = run_jobctl(db_path, "run", "plain", "--json", env=env)
    run = json.loads(shelled.stdout)
    assert (shelled.returncode, run["exit_code"], run["output"]) == (1, 3, f"{tmp_path}\n")
