"""A command run as a child process, for exec jobs and command agents.

`run_process` starts it without a terminal in its own process group (so a timeout can end
the group whole) and tied to this process's life, tells the caller its pid (the engine records
the group for a takeover), collects its output up to OUTPUT_CAP (and passes each piece on as
it is read, stdout and stderr kept apart, when asked to), applies the timeout, ends the group
(SIGTERM, then SIGKILL after a grace) and returns how it exited; `exit_error` and
`start_error` describe an exit and a failed start in one line.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobctl.actions import OUTPUT_CAP, cap_output
from jobctl.models import OutputStream
from jobctl.processes import group_members
from jobctl.timeutil import utcnow

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for the process group
DRAIN_AFTER_EXIT = 1.0  # seconds to keep reading after exit: background children may hold the pipe
_POLL = 0.05  # seconds between checks that a terminated group is gone
_READ_SIZE = 64 * 1024


class CannotStart(Exception):
    """The command could not be started; the message says why, in one line."""


@dataclass(frozen=True)
class Captured:
    """What a pipe carried: the first OUTPUT_CAP bytes, and how many there were in all."""

    data: bytes
    total: int

    def text(self) -> str:
        return cap_output(self.data, self.total)


class StoppedEarly(asyncio.CancelledError):
    """The command was ended because its run was cancelled; `output` is what it had written
    (stdout, with stderr unless kept apart). Still a CancelledError."""

    def __init__(self, output: Captured) -> None:
        super().__init__("interrupted")
        self.output = output


@dataclass(frozen=True)
class Exited:
    """How a command ended."""

    exit_code: int | None  # negative: killed by that signal
    timed_out: bool  # its group was ended at the timeout
    finished_at: datetime  # when it exited (or was ended), before the last output was drained
    elapsed: float  # seconds from the spawn to finished_at
    output: Captured  # stdout, with stderr interleaved in arrival order unless kept apart
    errors: Captured  # stderr when kept apart (separate_stderr=True), else empty


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: str | None = None,
    stdin: bytes | None = None,
    separate_stderr: bool = False,
    kill_grace: float = KILL_GRACE,
    on_process: Callable[[int], None] | None = None,
    on_output: Callable[[OutputStream, str], None] | None = None,
) -> Exited:
    """Run `argv` until it exits or `timeout` seconds pass; raises CannotStart.

    `stdin` is written to the command and then closed (None: /dev/null). `on_output` is told
    each piece of stdout and stderr as it is read (decoded as UTF-8). On cancellation (the
    daemon stopping) the group is ended before CancelledError goes on.
    """
    # Our own pipes rather than asyncio's: one fd for stdout and stderr keeps their order
    # exactly (two, when they are watched apart, keep it as they are read), and we can stop
    # reading (and close it) while a background child still holds it.
    apart = separate_stderr or on_output is not None
    pipes = [os.pipe() for _ in range(2 if apart else 1)]
    clock = time.monotonic()
    try:
        for read_fd, _write_fd in pipes:
            os.set_blocking(read_fd, False)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=pipes[0][1],
            stderr=pipes[-1][1],
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its own process group, so a timeout can kill it whole
            preexec_fn=die_with_parent(),
        )
    except (OSError, ValueError) as exc:
        for read_fd, _write_fd in pipes:
            os.close(read_fd)
        raise CannotStart(start_error(exc, argv[0], cwd)) from None
    finally:
        for _read_fd, write_fd in pipes:
            os.close(write_fd)
    if on_process is not None:
        on_process(process.pid)

    output = _Capture()
    errors = _Capture() if separate_stderr else output  # else both in arrival order
    collectors = [_Collector(pipes[0][0], output, OutputStream.STDOUT, on_output)]
    if apart:
        collectors.append(_Collector(pipes[1][0], errors, OutputStream.STDERR, on_output))
    feeder = asyncio.create_task(_feed(process, stdin)) if stdin is not None else None
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                await process.wait()
        except TimeoutError:
            timed_out = True
            await _terminate_group(process, kill_grace)
        finished_at = utcnow()
        elapsed = time.monotonic() - clock
        for collector in collectors:
            await collector.wait_eof(DRAIN_AFTER_EXIT)
    except asyncio.CancelledError as exc:
        # the daemon or `jobctl run` is stopping: leave no orphaned process group behind,
        # and hand on what the command had written so far
        await _terminate_group(process, kill_grace)
        raise StoppedEarly(output.captured()) from exc
    finally:
        if feeder is not None:
            feeder.cancel()
        for collector in collectors:
            collector.close()

    return Exited(
        exit_code=process.returncode,
        timed_out=timed_out,
        finished_at=finished_at,
        elapsed=elapsed,
        output=output.captured(),
        errors=errors.captured() if separate_stderr else Captured(b"", 0),
    )


def exit_error(code: int | None) -> str:
    """`exit code 3`, or `killed by signal SIGKILL` for a negative code."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by signal {name}"
    return f"exit code {code}"


def start_error(exc: OSError | ValueError, program: str, cwd: str | None) -> str:
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if cwd is not None and exc.filename == cwd:
            return f"cannot change to directory {cwd!r}: {reason}"
        return f"cannot start {program!r}: {reason}"
    return f"cannot start {program!r}: {exc}"  # e.g. an embedded NUL byte


class _Capture:
    """What one or two pipes carried, in the order it was read: OUTPUT_CAP bytes kept, all
    counted."""

    def __init__(self) -> None:
        self.total = 0
        self._chunks: list[bytes] = []
        self._kept = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self._kept < OUTPUT_CAP:  # past the cap, keep draining so the child never blocks
            kept = chunk[: OUTPUT_CAP - self._kept]
            self._chunks.append(kept)
            self._kept += len(kept)

    def captured(self) -> Captured:
        return Captured(b"".join(self._chunks), self.total)


class _Collector:
    """Reads a command's output pipe from the event loop into a _Capture, and tells
    `on_output` of each piece (decoded) when someone watches."""

    def __init__(
        self,
        fd: int,
        capture: _Capture,
        stream: OutputStream,
        on_output: Callable[[OutputStream, str], None] | None,
    ) -> None:
        self.fd = fd
        self.capture = capture
        self.stream = stream
        self.on_output = on_output
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._loop = asyncio.get_running_loop()
        self._eof: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self._loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        # one read per wake-up, so a command that floods output cannot starve the loop
        try:
            chunk = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        self.capture.add(chunk)
        if self.on_output is not None:
            self.on_output(self.stream, self._decoder.decode(chunk))

    async def wait_eof(self, timeout: float) -> None:
        if not self._eof.done():
            await asyncio.wait({self._eof}, timeout=timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.on_output is not None:
            self.on_output(self.stream, self._decoder.decode(b"", final=True))
        self._loop.remove_reader(self.fd)
        os.close(self.fd)
        if not self._eof.done():
            self._eof.set_result(None)


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    """Write `data` to stdin, then close it so the command sees the end of its input."""
    assert process.stdin is not None
    try:
        process.stdin.write(data)
        await process.stdin.drain()
        process.stdin.close()
        await process.stdin.wait_closed()
    except OSError:
        pass  # the command stopped reading (broken pipe); its exit status tells the rest


async def _terminate_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the whole group, give it `grace` seconds, then SIGKILL what is left."""
    pgid = process.pid  # start_new_session made the child the leader of its own group
    loop = asyncio.get_running_loop()
    try:
        _signal_group(pgid, signal.SIGTERM)
        deadline = loop.time() + grace
        while loop.time() < deadline and (process.returncode is None or _group_alive(pgid)):
            await asyncio.sleep(_POLL)
    finally:
        # also on a second cancellation: SIGKILL cannot be ignored
        _signal_group(pgid, signal.SIGKILL)
        if process.returncode is None:
            # in case the command moved itself out of its group; not process.kill(), whose
            # Popen.poll() would reap the child behind asyncio's watcher (returncode 255)
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    await process.wait()


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGKILL the child when this thread dies (Linux).

    A kill -9 of the daemon or of `jobctl run` then takes the direct child with it. Only the
    child: a grandchild (a command `sh -c` runs without exec) lives on in the group, which the
    process that takes the run over ends. PDEATHSIG follows the *thread* that forked, so
    commands must be started from a thread that lives as long as the process (the event
    loop's). The function runs between fork and exec, where other threads' locks may be
    held: it only calls a C function resolved here, in the parent, and os.getppid().
    """
    if not sys.platform.startswith("linux"):
        return None
    global _prctl
    if _prctl is None:
        import ctypes

        try:
            function = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
        function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        function.restype = ctypes.c_int
        _prctl = function
    prctl, parent, kill = _prctl, os.getpid(), int(signal.SIGKILL)

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), kill)

    return set_death_signal


_PR_SET_PDEATHSIG = 1
_prctl: Any = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone (or only holds a member we may not signal)


def _group_alive(pgid: int) -> bool:
    """Zombies count as gone: an init that never reaps (as in some containers) keeps them."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    members = group_members(pgid)
    return True if members is None else bool(members)  # no procfs (macOS): trust killpg


__all__ = [
    "DRAIN_AFTER_EXIT",
    "KILL_GRACE",
    "CannotStart",
    "Captured",
    "Exited",
    "die_with_parent",
    "exit_error",
    "run_process",
    "start_error",
]
