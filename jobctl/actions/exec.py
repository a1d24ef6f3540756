"""The exec action: a job's command (argv, or a /bin/sh line), its env and ${NAME} references
expanded, run through actions.process; its output and exit as an Outcome."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import Any

from jobctl.actions import Expansion, FireContext, Outcome, fail_before_start, interrupted
from jobctl.actions.process import (
    KILL_GRACE,
    CannotStart,
    StoppedEarly,
    exit_error,
    run_process,
)
from jobctl.errors import Failed
from jobctl.models import ExecSpec
from jobctl.secrets import REDACTED
from jobctl.timeutil import format_duration, iso_z, utcnow


async def run_command(
    spec: ExecSpec,
    ctx: FireContext,
    *,
    kill_grace: float = KILL_GRACE,
    base_env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run an exec spec; `base_env` (default: this process's environment) is what the job's
    env is laid over. ctx.env is only where ${NAME} comes from, so that an env file's secrets
    reach a command only through references it makes."""
    expansion = ctx.expansion
    command = spec.command
    shell = spec.shell
    cwd = spec.cwd or None
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
        for name, template in spec.env.items():
            value = expansion(str(template))
            if value != template:
                from_reference.add(name)
            job_env[str(name)] = value
    except Failed as exc:
        unsent = _snapshot(command, cwd, spec.env, shell, None, set())
        return fail_before_start(str(exc), utcnow(), unsent)
    snapshot = _snapshot(expanded_command, cwd, job_env, shell, expansion, from_reference)

    env = dict(os.environ if base_env is None else base_env)
    env.update(job_env)
    env["JOBCTL_JOB"] = ctx.job
    env["JOBCTL_RUN_ID"] = str(ctx.run_id)
    env["JOBCTL_SCHEDULED_FOR"] = iso_z(ctx.scheduled_for) or ""

    started_at = utcnow()
    try:
        exited = await run_process(
            argv,
            env=env,
            timeout=ctx.timeout,
            cwd=cwd,
            kill_grace=kill_grace,
            on_process=ctx.on_process,
            on_output=ctx.on_output if ctx.streaming else None,
        )
    except StoppedEarly as stopped:
        output = expansion.redact(stopped.output.text())
        raise interrupted(started_at, output=output, snapshot=snapshot) from stopped
    except CannotStart as exc:
        return Outcome(
            status="failed",
            started_at=started_at,
            finished_at=utcnow(),
            error=expansion.redact(str(exc)),
            snapshot=snapshot,
        )

    output = expansion.redact(exited.output.text())
    code = exited.exit_code
    if exited.timed_out:
        status = "timed_out"
        error: str | None = f"timed out after {format_duration(ctx.timeout)}; process group killed"
    elif code == 0:
        status, error = "succeeded", None
    else:
        status, error = "failed", exit_error(code)
    return Outcome(
        status=status,
        started_at=started_at,
        finished_at=exited.finished_at,
        exit_code=code,
        output=output,
        error=error,
        snapshot=snapshot,
    )


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


__all__ = ["run_command"]
