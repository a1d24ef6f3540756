"""Operating the daemon: detach, status, stop, logs, systemd notify, journald, SIGHUP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Invoke
from tests.realparts import (
    ROOT,
    DaemonProcess,
    jobctl_command,
    query,
    run_jobctl,
    wait_until,
)


@pytest.fixture
def stop_after(db_path: Path) -> Iterator[None]:
    yield
    run_jobctl(db_path, "daemon", "stop", "--timeout", "20s")


def test_detach_status_stop(
    db_path: Path, tmp_path: Path, jobctl: Invoke, stop_after: None
) -> None:
    jobctl("add", "beat", "--exec", "echo beat", "--every", "1s")
    log_file = tmp_path / "logs" / "jobctl.log"
    started = run_jobctl(
        db_path, "daemon", "--detach", "--log-file", str(log_file), "--log-level", "debug"
    )
    assert started.returncode == 0, started.stderr
    pidfile = db_path.with_name("jobctl.db.pid")
    pid = int(pidfile.read_text())
    assert f"pid {pid}" in started.stdout
    assert os.stat(pidfile).st_mode & 0o077 == 0
    wait_until(lambda: "beat run" in log_file.read_text(), what="a fire in the log")
    assert os.stat(log_file).st_mode & 0o077 == 0

    status = run_jobctl(db_path, "daemon", "status", "--json")
    assert status.returncode == 0
    assert f'"pid": {pid}' in status.stdout and str(log_file) in status.stdout
    owners = {row[0] for row in query(db_path, "SELECT owner_pid FROM runs")}
    assert owners == {pid}  # the detached process owns its runs, not the launcher

    again = run_jobctl(db_path, "daemon", "--detach", "--log-file", str(log_file))
    assert again.returncode == 4 and f"pid {pid}" in again.stderr

    logs = run_jobctl(db_path, "daemon", "logs", "-n", "2")
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 2

    stopped = run_jobctl(db_path, "daemon", "stop")
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not pidfile.exists()
    assert run_jobctl(db_path, "daemon", "status").returncode == 4
    assert "daemon stopped" in log_file.read_text()


def test_detached_daemons_on_two_databases_log_apart(tmp_path: Path) -> None:
    databases = {name: tmp_path / name / "jobs.db" for name in ("alpha", "bravo")}
    try:
        for name, database in databases.items():
            added = run_jobctl(database, "add", name, "--exec", "echo tick", "--every", "1s")
            assert added.returncode == 0, added.stderr
            started = run_jobctl(database, "daemon", "--detach", "--log-level", "debug")
            assert started.returncode == 0, started.stderr
            assert f"logging to {database}.log" in started.stdout
        for name, database in databases.items():
            wait_until(
                lambda database=database, name=name: f"{name} run" in daemon_logs(database),
                what=f"{name}'s fires in its own log",
            )
        for name, database in databases.items():
            other = next(other for other in databases if other != name)
            assert f"{other} run" not in daemon_logs(database)
            assert f"{other} run" not in Path(f"{database}.log").read_text()
            status = run_jobctl(database, "daemon", "status", "--json")
            assert f'"log_file": "{database}.log"' in status.stdout
    finally:
        for database in databases.values():
            run_jobctl(database, "daemon", "stop", "--timeout", "20s")


def test_daemon_status_shows_human_times_and_json_shows_utc(db_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "j", "--exec", "true", "--every", "1h")
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        table = jobctl("daemon", "status").stdout
        started = re.search(r"^started: +(.+)$", table, re.M)
        assert started, table
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \(up (\d+s|now)\)", started[1]
        )
        assert re.search(r"^last tick: +(\d+s ago|now)$", table, re.M), table
        info = json.loads(jobctl("daemon", "status", "--json").stdout)
        for key in ("started_at", "last_tick_at"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", info[key])
    finally:
        assert daemon.stop() == 0
    stopped = jobctl("daemon", "status")
    assert stopped.exit_code == 4
    assert re.search(r"^started: +\d{4}-\d\d-\d\d \S+ [+-]\d{4}$", stopped.stdout, re.M)
    assert "up " not in stopped.stdout


def daemon_logs(database: Path) -> str:
    result = run_jobctl(database, "daemon", "logs", "-n", "1000")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_detach_fails_loudly_on_a_bad_env_file(db_path: Path, tmp_path: Path) -> None:
    result = run_jobctl(db_path, "daemon", "--detach", "--env-file", str(tmp_path / "nope"))
    assert result.returncode == 2 and "env file" in result.stderr
    assert not db_path.exists()  # no daemon started: none created the database
    assert run_jobctl(db_path, "daemon", "status").returncode == 3  # no database at ...


def test_listen_address_in_use_is_one_line_before_detaching(db_path: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        expected = f"jobctl: cannot listen on {address}: address already in use\n"

        foreground = run_jobctl(db_path, "daemon", "--listen", address)
        assert (foreground.returncode, foreground.stderr) == (1, expected)

        log_file = tmp_path / "detached.log"
        detached = run_jobctl(
            db_path, "daemon", "--detach", "--listen", address, "--log-file", str(log_file)
        )
        assert (detached.returncode, detached.stderr, detached.stdout) == (1, expected, "")
        assert not log_file.exists()  # refused here, not after a fork and a 10 s wait
        assert not db_path.with_name("jobctl.db.pid").exists()
    assert run_jobctl(db_path, "daemon", "status").returncode == 4


class NotifySocket:
    """Stands in for systemd: an AF_UNIX datagram socket recording what it receives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self) -> list[str]:
        return [line for _, line in self.messages]

    def close(self) -> None:
        self._running = False
        self._thread.join(2)
        self.sock.close()


def test_systemd_notify_protocol(db_path: Path, tmp_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "j", "--exec", "true", "--every", "1h")
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {
        **os.environ,
        "JOBCTL_DB": str(db_path),
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "1000000",
    }
    process = subprocess.Popen(
        jobctl_command("daemon"),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: notify.lines().count("WATCHDOG=1") >= 3, what="watchdog pings")
        # Stall the loop: hold the write lock so its next transaction waits.
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        stall_start = time.monotonic()
        time.sleep(3)
        blocker.execute("ROLLBACK")
        stall_end = time.monotonic()
        wait_until(
            lambda: [t for t, line in notify.messages if line == "WATCHDOG=1" and t > stall_end],
            what="pings again",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        wait_until(lambda: "STOPPING=1" in notify.lines(), timeout=5, what="STOPPING=1")
    finally:
        if process.poll() is None:
            process.kill()
        notify.close()
    lines = notify.lines()
    assert lines.index("READY=1") < lines.index("WATCHDOG=1") < lines.index("STOPPING=1")
    assert any(line.startswith("STATUS=1 job enabled, ") for line in lines)
    assert f"MAINPID={process.pid}" in lines
    pings = [t for t, line in notify.messages if line == "WATCHDOG=1"]
    during = [t for t in pings if stall_start + 1.0 < t < stall_end - 0.2]
    assert during == [], "a stuck loop must not keep pinging the watchdog"


def test_journald_lines_carry_priorities_and_no_time(
    db_path: Path, tmp_path: Path, jobctl: Invoke
) -> None:
    jobctl("add", "j", "--exec", "true", "--every", "1h")
    log = tmp_path / "journal.txt"
    with open(log, "w") as stream:
        info = os.fstat(stream.fileno())
        env = {
            **os.environ,
            "JOBCTL_DB": str(db_path),
            "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}",
        }
        process = subprocess.Popen(
            jobctl_command("daemon"), env=env, cwd=ROOT, stdout=stream, stderr=stream
        )
        wait_until(lambda: "daemon started" in log.read_text(), what="start")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith("<") for line in lines), lines
    assert any(line.startswith("<6>daemon started") for line in lines)


def test_sighup_reopens_a_moved_log_file(db_path: Path, tmp_path: Path, jobctl: Invoke) -> None:
    jobctl("add", "beat", "--exec", "true", "--every", "1s")
    log_file = tmp_path / "daemon.log"
    env = {**os.environ, "JOBCTL_DB": str(db_path)}
    process = subprocess.Popen(
        jobctl_command("daemon", "--log-file", str(log_file), "--log-level", "debug"),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: log_file.exists() and "beat run" in log_file.read_text(), what="a logged fire"
        )
        log_file.rename(tmp_path / "daemon.log.1")
        process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: log_file.exists() and "SIGHUP" in log_file.read_text(), what="the new log file"
        )
        wait_until(lambda: "beat run" in log_file.read_text(), what="fires in the new file")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_systemd_unit() -> None:
    # Not tmp_path: a database in /tmp gets a unit without PrivateTmp (see the next test).
    db_path = Path("/var/lib/jobctl-test-nowhere/jobctl.db")
    result = run_jobctl(db_path, "daemon", "--systemd-unit", "--user")
    assert result.returncode == 0
    unit = result.stdout
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "Restart=on-failure" in unit
    assert "NoNewPrivileges=yes" in unit and "PrivateTmp=yes" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    program = Path(unit_exec_start(unit)[0])  # this install's script, also under python -m
    assert program.is_absolute() and program.name == "jobctl" and os.access(program, os.X_OK)
    assert f"--db {db_path}" in exec_start
    assert "WantedBy=default.target" in unit


def test_systemd_unit_for_a_database_in_tmp_keeps_the_shared_tmp(tmp_path: Path) -> None:
    # PrivateTmp=yes gives the service a /tmp of its own, where /tmp/x.db does not exist.
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        in_tmp = Path(directory) / "x.db"
        result = run_jobctl(in_tmp, "daemon", "--systemd-unit")
        assert result.returncode == 0, result.stderr
        assert "PrivateTmp" not in result.stdout
        assert result.stderr.startswith(f"jobctl: warning: {in_tmp} in a temporary directory")
        assert "PrivateTmp=yes" in result.stderr
        assert not in_tmp.exists()
    elsewhere = Path("/var/lib/jobctl-test-nowhere/x.db")
    result = run_jobctl(elsewhere, "daemon", "--systemd-unit", "--env-file", "/var/tmp/secrets.env")
    assert result.returncode == 0, result.stderr
    assert "PrivateTmp" not in result.stdout and "/var/tmp/secrets.env" in result.stderr
    result = run_jobctl(elsewhere, "daemon", "--systemd-unit")
    assert "PrivateTmp=yes" in result.stdout and result.stderr == ""


# systemd's C-style escapes (systemd.syntax(7) "Quoting"), decoded by the test's own splitter
_SYSTEMD_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SYSTEMD_ESCAPES |= {"v": "\v", "\\": "\\", '"': '"', "'": "'", "s": " "}


def systemd_split(line: str) -> list[str]:
    """An ExecStart value as systemd turns it into argv: specifiers, quotes, escapes, `$$`.

    Written from systemd.service(5) "Command lines", independently of jobctl's quoting.
    Unresolved `%x` specifiers and `$NAME` references fail the test instead of expanding.
    """
    words: list[str] = []
    index = 0
    while index < len(line):
        if line[index] in " \t":
            index += 1
            continue
        word, quote = "", ""
        while index < len(line) and (quote or line[index] not in " \t"):
            char = line[index]
            if char == "%":
                assert line[index + 1] == "%", f"a specifier %{line[index + 1]} in {line!r}"
                word += "%"
                index += 2
            elif char == "$":
                assert line[index + 1] == "$", f"an environment reference in {line!r}"
                word += "$"
                index += 2
            elif char in "\"'" and not quote:
                quote = char
                index += 1
            elif char == quote:
                quote = ""
                index += 1
                assert index == len(line) or line[index] in " \t", "text right after a quote"
            elif char == "\\":
                code = line[index + 1]
                if code == "x":
                    word += chr(int(line[index + 2 : index + 4], 16))
                    index += 4
                else:
                    word += _SYSTEMD_ESCAPES[code]
                    index += 2
            else:
                word += char
                index += 1
        assert not quote, f"unterminated quote in {line!r}"
        assert word != ";", "a lone semicolon would separate commands"
        words.append(word)
    return words


def unit_exec_start(unit: str) -> list[str]:
    lines = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, unit
    return systemd_split(lines[0].removeprefix("ExecStart="))


def test_systemd_splitter_reads_systemd_quoting() -> None:
    assert systemd_split(r'/bin/x "a b" c\x20d "e\"f" 100%% $$HOME "\\;" ') == [
        "/bin/x",
        "a b",
        "c d",
        'e"f',
        "100%",
        "$HOME",
        "\\;",
    ]


def test_systemd_unit_carries_every_daemon_option(
    db_path: Path, tmp_path: Path, jobctl: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOBCTL_ENV_FILE", raising=False)
    options = [
        "--listen", "127.0.0.1:8787",
        "--max-exec", "4",
        "--grace", "1m",
        "--log-level", "debug",
        "--max-http", "10",
    ]  # fmt: skip
    result = jobctl("daemon", "--systemd-unit", "--user", *options)
    assert result.exit_code == 0, result.stderr
    argv = unit_exec_start(result.stdout)
    assert argv[0].startswith("/") and argv[1] == "daemon"
    given = argv[2:]
    assert given[:2] == ["--db", str(db_path)]
    pairs = {given[i]: given[i + 1] for i in range(2, len(given), 2)}
    assert pairs == dict(zip(options[::2], options[1::2], strict=True))

    # Values systemd would otherwise split, expand or unescape; relative paths made absolute.
    odd = 'secrets $HOME 100% "quoted" \\ back\tslash;.env'
    weird_db = tmp_path / "my data%d" / "jobs $x.db"
    result = jobctl(
        "--db", str(weird_db), "daemon", "--systemd-unit", "--env-file", odd, "--log-file", "d.log"
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert unit_exec_start(result.stdout)[2:] == [
        "--db", str(weird_db),
        "--env-file", str(tmp_path / odd),
        "--log-file", str(tmp_path / "d.log"),
    ]  # fmt: skip
    assert "WantedBy=multi-user.target" in result.stdout

    # The daemon's env file named in the environment is carried too.
    monkeypatch.setenv("JOBCTL_ENV_FILE", "env/secrets.env")
    result = jobctl("daemon", "--systemd-unit")
    assert unit_exec_start(result.stdout)[2:] == [
        "--db", str(db_path), "--env-file", str(tmp_path / "env" / "secrets.env"),
    ]  # fmt: skip


def test_systemd_unit_refuses_launch_options(db_path: Path, jobctl: Invoke) -> None:
    result = jobctl("daemon", "--systemd-unit", "--detach")
    assert result.exit_code == 2 and "--detach" in result.stderr
    result = jobctl("daemon", "--user", "--max-http", "3")
    assert result.exit_code == 2 and "--systemd-unit" in result.stderr
    assert not db_path.exists()
