"""Escape sequences in a job's output or error never reach the terminal raw: human output
shows control characters in caret notation (ESC as ^[), JSON output escapes them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobctl.output import visible
from tests.realparts import run_jobctl

CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: write the clipboard
TITLE = "\x1b]0;owned\x07"  # OSC 0: set the window title
CLEAR = "\x1b[2J"  # CSI: clear the screen
BODY = f"{CLIPBOARD}{TITLE}{CLEAR}hello\x9b31m\r\nbye\tend\n"
REASON = f"Bad{CLEAR}{TITLE}News"


@pytest.fixture
def hostile_server() -> Iterator[str]:
    """A real HTTP server answering every request with escapes in its reason and body."""
    server = socket.create_server(("127.0.0.1", 0))
    body = BODY.encode()
    head = f"HTTP/1.1 500 {REASON}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(head.encode() + body)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    server.close()


def raw_controls(data: bytes) -> list[int]:
    text = data.decode()
    return [ord(c) for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]


def test_visible_uses_caret_notation() -> None:
    assert visible(BODY) == ("^[]52;c;cHduZWQ=^G^[]0;owned^G^[[2JhelloM-^[31m\r\nbye\tend\n")
    assert visible("a\rb\x7f\x00") == "a^Mb^?^@"
    assert visible("plain\ttext\n") == "plain\ttext\n"


def test_human_output_shows_escapes_json_keeps_them_exact(
    db_path: Path, hostile_server: str, tmp_path: Path
) -> None:
    assert run_jobctl(db_path, "add", "evil", "--url", hostile_server, "--manual").returncode == 0
    here = run_jobctl(db_path, "run", "evil")
    assert here.returncode == 1
    shown = [here]
    for args in (("runs",), ("runs", "show", "1"), ("show", "evil"), ("status",)):
        shown.append(run_jobctl(db_path, *args))
        assert shown[-1].returncode == 0, shown[-1].stderr
    log = tmp_path / "daemon.log"
    log.write_text(f"2025-01-01 run 1 of evil failed: {REASON}\n")
    shown.append(run_jobctl(db_path, "daemon", "logs", "--log-file", str(log)))
    for result in shown:
        data = (result.stdout + result.stderr).encode()
        assert not raw_controls(data), (result.args, data)
    assert "^[]52;c;cHduZWQ=^G" in here.stdout and "hello" in here.stdout
    assert "Bad^[[2J^[]0;owned^GNews" in here.stderr
    assert "^[]52;c;" in shown[2].stdout and "Bad^[[2J" in shown[1].stdout
    assert "Bad^[[2J" in shown[-1].stdout

    exact = json.loads(run_jobctl(db_path, "runs", "show", "1", "--json").stdout)
    assert exact["output"] == BODY and REASON in exact["error"]
    for args in (("runs", "--json"), ("runs", "--format", "jsonl")):
        printed = run_jobctl(db_path, *args).stdout
        assert not raw_controls(printed.encode()), args
        runs = json.loads(printed) if "--json" in args else [json.loads(printed)]
        assert runs[0]["output"] == BODY
