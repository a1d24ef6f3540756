"""Real parts for integration tests: an HTTP sink on 127.0.0.1:0 and a daemon subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


async def wait_until_async(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """wait_until inside an event loop: the loop runs while it polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: datetime


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Sink:
    """A real HTTP server that records every request and answers as configured per path."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    replies: dict[str, Reply] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Listening(ThreadingHTTPServer):
    """A sink that takes a daemon's burst of connections (hundreds at once) as a real server
    does: socketserver's listen backlog of 5 drops the SYNs past it, and the kernel's
    retries (1 s, 2 s, 4 s ...) then look like a slow scheduler."""

    request_queue_size = 1024


def start_sink() -> Sink:
    sink: Sink

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            with sink.lock:
                sink.received.append(
                    Received(self.command, path, dict(self.headers), body, datetime.now(UTC))
                )
                reply = sink.replies.get(path, Reply())
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Listening(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink = Sink(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return sink


def database(db: Path) -> str:
    """The database a helper works on: the test's PostgreSQL database when JOBCTL_DB names
    one (a test run on both stores, tests.conftest.BOTH_STORES), else the file `db`."""
    chosen = os.environ.get("JOBCTL_DB", "")
    return chosen if chosen.startswith("postgresql://") else str(db)


def jobctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobctl", *args]


def run_jobctl(
    db: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "JOBCTL_DB": database(db), **(env or {})}
    return subprocess.run(
        jobctl_command(*args),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
        input=input,
    )


class DaemonProcess:
    """`jobctl daemon` as a real subprocess, its log in a file."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.log_path = db.parent.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        full_env = {**os.environ, "JOBCTL_DB": database(db), **(env or {})}
        self.process = subprocess.Popen(
            jobctl_command("daemon", "--log-level", "debug", *args),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 20) -> DaemonProcess:
        wait_until(
            lambda: "daemon started" in self.log() or self.process.poll() is not None,
            timeout,
            "the daemon to start",
        )
        assert self.process.poll() is None, self.log()
        return self

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()
        return code

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._log.close()


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    """Rows of `sql` (with `?` marks) read from the test's database, by name or position."""
    location = database(db)
    if location.startswith("postgresql://"):
        from tests.pgserver import pg_query

        return pg_query(location, sql, params)  # type: ignore[return-value]
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()  # what an UPDATE changed
        return rows
    finally:
        conn.close()


def job_runs(db: Path, job: str) -> list[sqlite3.Row]:
    return query(
        db,
        "SELECT runs.* FROM runs JOIN jobs ON jobs.id = runs.job_id "
        "WHERE jobs.name = ? ORDER BY runs.id",
        job,
    )


def add_job(db: Path, *args: str) -> None:
    result = run_jobctl(db, "add", *args)
    assert result.returncode == 0, result.stderr


def parse_json(text: str) -> Any:
    return json.loads(text)


def make_due_now(db: Path, job: str | None = None) -> None:
    """Move a job's next slot to now, so a test need not wait for its schedule."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if database(db).startswith("postgresql://"):
        where, params = ("", (now,)) if job is None else (" WHERE name = ?", (now, job))
        query(db, f"UPDATE jobs SET next_run_at = ?{where}", *params)
        return
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        if job is None:
            conn.execute("UPDATE jobs SET next_run_at = ?", (now,))
        else:
            conn.execute("UPDATE jobs SET next_run_at = ? WHERE name = ?", (now, job))
    finally:
        conn.close()


def follow_beat_until_three_runs(db: Path, *follow_args: str, columns: str | None = None) -> str:
    """`jobctl runs beat --follow ...` against a real daemon while the job `beat` (added by
    the caller) succeeds three times, stopped with SIGINT: what it printed. Asserts it
    exited 0 with no traceback.

    The follower starts with SIGINT ignored, as a shell's background job does: it must
    stop on SIGINT all the same. The signal is sent once it has printed, so that it does
    not land while the follower is still starting."""
    env = {**os.environ, "JOBCTL_DB": database(db)}
    if columns is not None:
        env["COLUMNS"] = columns
    daemon = DaemonProcess(db).wait_ready()
    command = [*jobctl_command("runs", "beat", "--follow", *follow_args, "--limit", "0")]
    follower = subprocess.Popen(
        ["/bin/sh", "-c", 'trap "" INT; exec "$@"', "sh", *command],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = PipeReader(follower.stdout)
    err = PipeReader(follower.stderr)
    try:
        wait_until(
            lambda: (
                len(query(db, "SELECT id FROM runs WHERE status = 'succeeded'")) >= 3
                and "succeeded" in out.text()
            ),
            what="three runs, followed",
        )
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    finally:
        daemon.stop()
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        out.join()
        err.join()
    assert follower.returncode == 0, err.text()
    assert "Traceback" not in err.text()
    return out.text()


class PipeReader:
    """Reads a subprocess's text pipe in a thread, so that a test can look at what it has
    printed so far without blocking."""

    def __init__(self, pipe: Any) -> None:
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: Any) -> None:
        """Chunks as they come (a line not ended yet too), decoded as UTF-8."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := os.read(pipe.fileno(), 65536):
            with self._lock:
                self._chunks.append(decoder.decode(chunk))

    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def complete_lines(self) -> list[str]:
        """The lines read so far that have ended (a line still being written is left out)."""
        text = self.text()
        return text[: text.rfind("\n") + 1].splitlines()

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)
