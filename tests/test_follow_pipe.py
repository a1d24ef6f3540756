"""`runs show --follow` into a pipe whose reader goes away (`| head -2`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import Invoke
from tests.realparts import ROOT, DaemonProcess, job_runs, jobctl_command, wait_until


def test_follow_into_a_closed_pipe_stops_with_141_and_the_run_goes_on(
    db_path: Path, jobctl: Invoke
) -> None:
    command = "for i in $(seq 1 40); do echo line $i; sleep 0.1; done"
    jobctl("add", "long", "--exec", command, "--manual")
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        jobctl("run", "long", "--queue")
        follower = subprocess.Popen(
            jobctl_command("runs", "show", "--follow", "long"),
            env={**os.environ, "JOBCTL_DB": str(db_path)},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"line 1\n"
        follower.stdout.close()  # as `head -1` does once it has its line
        try:
            code = follower.wait(10)
        finally:
            if follower.poll() is None:
                follower.kill()
        assert code == 141  # stopped by the pipe, as SIGPIPE would: not the run's 0 or 1
        assert follower.stderr is not None and b"Traceback" not in follower.stderr.read()
        [run] = job_runs(db_path, "long")
        assert run["status"] == "running"  # following stopped; the run did not
        wait_until(
            lambda: job_runs(db_path, "long")[0]["status"] == "succeeded", what="the run's end"
        )
    finally:
        assert daemon.stop() == 0, daemon.log()
