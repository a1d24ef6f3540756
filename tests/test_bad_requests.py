"""Malformed requests to the listener cost one short log line each, never a traceback, and
a flood of them is cut to a few lines a minute."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from jobctl.bad_requests import LINES_PER_MINUTE, BadRequestLog
from tests.realparts import DaemonProcess, query, wait_until

LONG = "x" * 8200  # over aiohttp's 8190-byte limit for a header
ATTACKS = [
    b"POST /hooks/h\xff HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"POST /hooks/h HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /hooks/h HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % n for n in range(300))
    + b"\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + LONG.encode() + b"\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n",
]


def send(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply


def test_malformed_requests_log_one_short_line_each_and_are_rate_limited(
    db_path: Path,
) -> None:
    daemon = DaemonProcess(db_path, "--listen", "127.0.0.1:0").wait_ready()
    try:
        row = wait_until(
            lambda: query(db_path, "SELECT listen FROM daemon WHERE listen IS NOT NULL"),
            what="the listener",
        )
        port = int(str(row[0][0]).rsplit(":", 1)[1])
        before = len(daemon.log())
        for attack in ATTACKS:  # each one alone: one line, no traceback
            assert b" 400 Bad Request" in send(port, attack)[:40], attack
        wait_until(lambda: daemon.log().count("bad request") >= len(ATTACKS), what="the lines")
        lines = daemon.log()[before:].splitlines()
        assert len(lines) == len(ATTACKS), lines
        assert all("bad request from 127.0.0.1" in line and len(line) < 300 for line in lines)
        assert " ERROR " not in "\n".join(lines)
        for _ in range(30):  # a flood
            for attack in ATTACKS:
                send(port, attack)
        assert send(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ).startswith(b"HTTP/1.1 200")
    finally:
        assert daemon.stop() == 0
    flood = daemon.log()[before:]
    assert "Traceback" not in flood
    assert flood.count("bad request from") <= 20, flood
    assert "not logged" in flood  # says that lines were left out
    assert len(flood.encode()) < 8000


def test_a_new_minute_says_how_many_lines_were_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    log = BadRequestLog(logging.getLogger("jobctl.test"), clock=lambda: now[0])
    error = BadHttpMessage("Invalid header\n\n  b'X: \\x1b'")
    with caplog.at_level(logging.DEBUG, "jobctl.test"):
        for _ in range(LINES_PER_MINUTE + 5):
            log.exception("Error handling request from %s", "10.0.0.1", exc_info=error)
        now[0] += 61
        log.exception("Error handling request from %s", "10.0.0.2", exc_info=error)
        log.exception("Unhandled exception", exc_info=ValueError("a bug of ours"))
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "bad request from 10.0.0.1: Invalid header (400)"
    assert messages.count("bad request from 10.0.0.1: Invalid header (400)") == LINES_PER_MINUTE
    assert "5 more bad requests in the last minute were not logged" in messages
    assert messages[-2] == "bad request from 10.0.0.2: Invalid header (400)"
    assert caplog.records[-1].exc_info is not None  # our own bugs keep their traceback
