"""Ctrl-C: a real SIGINT to a real `jobctl` exits 130 without a traceback; followers exit 0."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
from pathlib import Path

from tests.conftest import Invoke
from tests.realparts import (
    ROOT,
    DaemonProcess,
    Reply,
    Sink,
    job_runs,
    jobctl_command,
    wait_until,
)


def _start(db_path: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    options.update(kwargs)
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        jobctl_command(*args),
        env={**os.environ, "JOBCTL_DB": str(db_path)},
        cwd=ROOT,
        text=True,
        **options,
    )


def _interrupt(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return str(err)


def test_ctrl_c_on_run_exits_130_and_marks_the_run(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    jobctl("add", "slow", "--exec", f"touch {started}; sleep 30", "--shell", "--manual")
    process = _start(db_path, "run", "slow")
    wait_until(started.exists, what="the run to start")
    err = _interrupt(process)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err
    assert err == "jobctl: interrupted\n"
    assert [r["status"] for r in job_runs(db_path, "slow")] == ["interrupted"]


def test_ctrl_c_on_run_keeps_the_output_so_far_and_the_request(
    jobctl: Invoke, db_path: Path, tmp_path: Path, sink: Sink
) -> None:
    started = tmp_path / "started"
    jobctl(
        "add", "slow", "--exec", f"echo before the interrupt; touch {started}; sleep 30", "--manual"
    )
    process = _start(db_path, "run", "slow")
    wait_until(started.exists, what="the run to start")
    assert process.returncode is None
    _interrupt(process)
    assert process.returncode == 130
    [row] = job_runs(db_path, "slow")
    run = json.loads(jobctl("runs", "show", str(row["id"]), "--json").stdout)
    assert run["status"] == "interrupted" and run["error"].startswith("interrupted")
    assert run["output"] == "before the interrupt\n"
    assert run["snapshot"]["command"].startswith("echo before the interrupt")

    sink.replies["/slow"] = Reply(delay=30)
    jobctl("add", "slow-http", "--url", f"{sink.url}/slow", "--manual")
    process = _start(db_path, "run", "slow-http")
    wait_until(lambda: sink.requests_to("/slow"), what="the request")
    _interrupt(process)
    assert process.returncode == 130
    [row] = job_runs(db_path, "slow-http")
    run = json.loads(jobctl("runs", "show", str(row["id"]), "--json").stdout)
    assert run["status"] == "interrupted"
    assert run["snapshot"]["url"] == f"{sink.url}/slow"
    assert run["snapshot"]["headers"]["X-Jobctl-Run"] == str(row["id"])


def test_ctrl_c_on_run_queue_wait_says_the_run_goes_on_in_the_daemon(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    jobctl("add", "slow", "--exec", f"touch {started}; sleep 30", "--shell", "--manual")
    daemon = DaemonProcess(db_path, "--grace", "1s").wait_ready()
    try:
        process = _start(db_path, "run", "slow", "--queue", "--wait")
        wait_until(started.exists, what="the daemon to start the run")
        err = _interrupt(process)
        assert process.returncode == 130, err
        run_id = job_runs(db_path, "slow")[0]["id"]
        assert err == (
            f"jobctl: interrupted; run {run_id} of slow goes on in the daemon: "
            f"`jobctl runs show {run_id}` shows it, `jobctl runs slow --follow` follows it\n"
        )
        assert [r["status"] for r in job_runs(db_path, "slow")] == ["running"]
    finally:
        daemon.stop()


def _read_terminal(controller: int, until: bytes | None = None) -> bytes:
    """What the program wrote to its terminal: up to `until`, or all it wrote so far."""
    seen = b""
    while until is None or until not in seen:
        ready, _, _ = select.select([controller], [], [], 20 if until else 0.5)
        if not ready:
            assert until is None, f"no {until!r} on the terminal; got {seen!r}"
            break
        try:
            seen += os.read(controller, 1024)
        except OSError:  # the program exited and closed the terminal
            break
    return seen


def test_ctrl_c_at_a_prompt_exits_130_and_changes_nothing(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "keep", "--exec", "true", "--manual")
    controller, terminal = pty.openpty()
    try:
        process = _start(db_path, "rm", "keep", stdin=terminal, stdout=terminal, stderr=terminal)
        _read_terminal(controller, b"Remove keep")
        process.send_signal(signal.SIGINT)
        process.wait(20)
        after = _read_terminal(controller).decode()
    finally:
        os.close(controller)
        os.close(terminal)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, after
    assert "Aborted" not in after and "Traceback" not in after
    assert after.strip().endswith("jobctl: interrupted")
    assert jobctl("show", "keep").exit_code == 0


def test_ctrl_c_on_daemon_logs_follow_exits_0(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    log.write_text("one\n")
    process = _start(db_path, "daemon", "logs", "-f", "--log-file", str(log))
    assert process.stdout is not None
    assert process.stdout.readline() == "one\n"
    err = _interrupt(process)
    assert process.returncode == 0, err
    assert err == ""
