"""The exec action: a command run without a terminal, in its own process group."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

from jobctl.actions import (
    OUTPUT_CAP,
    Expansion,
    FireContext,
    Outcome,
    cap_output,
    fail_before_start,
)
from jobctl.errors import Failed
from jobctl.secrets import REDACTED
from jobctl.timeutil import format_duration, iso_z, utcnow

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for the process group
DRAIN_AFTER_EXIT = 1.0  # seconds to keep reading after exit: background children may hold the pipe
_POLL = 0.05  # seconds between checks that a terminated group is gone
_READ_SIZE = 64 * 1024


async def run_command(
    spec: Mapping[str, Any],
    ctx: FireContext,
    *,
    kill_grace: float = KILL_GRACE,
    base_env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run an exec spec; `base_env` (default: this process's environment) is what the job's
    env is laid over. ctx.env is only where ${NAME} comes from, so that an env file's secrets
    reach a command only through references it makes."""
    expansion = ctx.expansion
    command = str(spec["command"])
    shell = bool(spec.get("shell"))
    cwd: str | None = spec.get("cwd") or None
    job_env: dict[str, str] = {}
    from_reference: set[str] = set()  # env names whose value came from ${NAME}
    try:
        expanded_command = expansion(command)
        if shell:
            argv = ["/bin/sh", "-c", expanded_command]
        else:
            try:
                words = shlex.split(command)
            except ValueError as exc:
                raise Failed(f"invalid command {command!r}: {exc}") from None
            # split before expanding, so a secret with spaces or quotes stays one argument
            argv = [expansion(word) for word in words]
            if not argv:
                raise Failed("invalid command: it is empty")
        for name, template in (spec.get("env") or {}).items():
            value = expansion(str(template))
            if value != template:
                from_reference.add(name)
            job_env[str(name)] = value
    except Failed as exc:
        template = _snapshot(command, cwd, spec.get("env") or {}, shell, None, set())
        return fail_before_start(str(exc), utcnow(), template)
    snapshot = _snapshot(expanded_command, cwd, job_env, shell, expansion, from_reference)

    env = dict(os.environ if base_env is None else base_env)
    env.update(job_env)
    env["JOBCTL_JOB"] = ctx.job
    env["JOBCTL_RUN_ID"] = str(ctx.run_id)
    env["JOBCTL_SCHEDULED_FOR"] = iso_z(ctx.scheduled_for) or ""

    # Our own pipe rather than asyncio's: one fd for stdout and stderr keeps their order,
    # and we can stop reading (and close it) while a background child still holds it.
    read_fd, write_fd = os.pipe()
    started_at = utcnow()
    try:
        os.set_blocking(read_fd, False)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group, so a timeout can kill it whole
            preexec_fn=die_with_parent(),
        )
    except (OSError, ValueError) as exc:
        os.close(read_fd)
        return Outcome(
            status="failed",
            started_at=started_at,
            finished_at=utcnow(),
            error=expansion.redact(_start_error(exc, argv[0], cwd)),
            snapshot=snapshot,
        )
    finally:
        os.close(write_fd)
    if ctx.on_process is not None:
        ctx.on_process(process.pid)

    collector = _Collector(read_fd)
    timed_out = False
    try:
        try:
            async with asyncio.timeout(ctx.timeout):
                await process.wait()
        except TimeoutError:
            timed_out = True
            await _terminate_group(process, kill_grace)
        finished_at = utcnow()
        await collector.wait_eof(DRAIN_AFTER_EXIT)
    except asyncio.CancelledError:
        # the daemon is stopping: leave no orphaned process group behind
        await _terminate_group(process, kill_grace)
        raise
    finally:
        collector.close()

    output = expansion.redact(cap_output(collector.data(), collector.total))
    code = process.returncode
    if timed_out:
        status = "timed_out"
        error: str | None = f"timed out after {format_duration(ctx.timeout)}; process group killed"
    elif code == 0:
        status, error = "succeeded", None
    else:
        status, error = "failed", _exit_error(code)
    return Outcome(
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        exit_code=code,
        output=output,
        error=error,
        snapshot=snapshot,
    )


class _Collector:
    """Reads the command's output pipe from the event loop; keeps OUTPUT_CAP bytes, counts all."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.total = 0
        self._chunks: list[bytes] = []
        self._kept = 0
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
        self.total += len(chunk)
        if self._kept < OUTPUT_CAP:  # past the cap, keep draining so the child never blocks
            kept = chunk[: OUTPUT_CAP - self._kept]
            self._chunks.append(kept)
            self._kept += len(kept)

    async def wait_eof(self, timeout: float) -> None:
        if not self._eof.done():
            await asyncio.wait({self._eof}, timeout=timeout)

    def data(self) -> bytes:
        return b"".join(self._chunks)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self.fd)
        os.close(self.fd)
        if not self._eof.done():
            self._eof.set_result(None)


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
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    """Zombies count as gone: an init that never reaps (as in some containers) keeps them."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no procfs (macOS): trust killpg
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # exited while we looked
        fields = stat.rpartition(b")")[2].split()  # after the command name: state, ppid, pgrp
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


def _exit_error(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by signal {name}"
    return f"exit code {code}"


def _start_error(exc: OSError | ValueError, program: str, cwd: str | None) -> str:
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if cwd is not None and exc.filename == cwd:
            return f"cannot change to directory {cwd!r}: {reason}"
        return f"cannot start {program!r}: {reason}"
    return f"cannot start {program!r}: {exc}"  # e.g. an embedded NUL byte


def _snapshot(
    command: str,
    cwd: str | None,
    env: Mapping[str, Any],
    shell: bool,
    expansion: Expansion | None,
    from_reference: set[str],
) -> dict[str, Any]:
    def redact(text: str) -> str:
        return expansion.redact(text) if expansion is not None else text

    shown_env = {
        str(name): REDACTED if name in from_reference else redact(str(value))
        for name, value in env.items()
    }
    return {"command": redact(command), "cwd": cwd, "env": shown_env, "shell": shell}


__all__ = ["DRAIN_AFTER_EXIT", "KILL_GRACE", "die_with_parent", "run_command"]
