"""The agent action: a prompt in, the agent's answer out, as an Outcome.

The owner of the agent protocols: OpenAI-compatible chat completions and the Anthropic
Messages API (agent_http, through one lazily created aiohttp session; agent_answers reads
their replies, whole or streamed) and local command agents (here). Only honest answers
succeed: HTTP errors, refusals, empty and malformed answers are failed runs.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from typing import Any

from jobctl.actions import FireContext, Outcome, cap_output, fail_before_start, interrupted
from jobctl.actions.agent_answers import EXCERPT, one_line, usage_of
from jobctl.actions.agent_http import (
    ANTHROPIC_VERSION,
    ENDPOINTS,
    AgentProfile,
    ask_http,
    fill_placeholders,
    template_snapshot,
)
from jobctl.actions.process import (
    KILL_GRACE,
    CannotStart,
    StoppedEarly,
    exit_error,
    run_process,
)
from jobctl.actions.request import SessionOwner
from jobctl.errors import Failed
from jobctl.timeutil import format_duration, iso_z, utcnow

PROMPT_ARGUMENT = "{prompt}"


class AgentFirer(SessionOwner):
    """Asks agents; HTTP kinds share one ClientSession (created lazily in the running loop)."""

    def __init__(self, *, max_connections: int = 100, kill_grace: float = KILL_GRACE) -> None:
        super().__init__(max_connections)
        self.kill_grace = kill_grace

    async def __aenter__(self) -> AgentFirer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ask(self, agent: AgentProfile, prompt: str, ctx: FireContext) -> Outcome:
        """Send `prompt` (placeholders rendered; `${NAME}` still to expand) and wait for the
        answer, within ctx.timeout seconds."""
        if agent.kind in ENDPOINTS:
            return await ask_http(self._get_session(), agent, prompt, ctx)
        if agent.kind == "command":
            return await self._ask_command(agent, prompt, ctx)
        return fail_before_start(
            f"unknown agent kind {agent.kind!r}",
            utcnow(),
            {"agent": agent.name, "kind": agent.kind},
        )

    async def _ask_command(self, agent: AgentProfile, prompt: str, ctx: FireContext) -> Outcome:
        command = str(agent.config.get("command") or "")
        expansion = ctx.expansion
        details: dict[str, Any] = {
            "agent": agent.name,
            "kind": "command",
            "model": None,
            "finish_reason": None,
            "usage": usage_of(None, None),
            "latency_ms": None,
        }
        try:
            text = fill_placeholders(expansion(prompt), ctx)
            try:
                words = shlex.split(command)
            except ValueError as exc:
                raise Failed(f"invalid command {command!r}: {exc}") from None
            if not words:
                raise Failed("invalid command: it is empty")
            # split before expanding, so a secret or the prompt stays one argument
            argv = [expansion(word) for word in words]
        except Failed as exc:
            return fail_before_start(
                expansion.redact(str(exc)), utcnow(), template_snapshot(agent, prompt)
            )
        prompt_as_argument = any(PROMPT_ARGUMENT in word for word in words)
        if prompt_as_argument:
            argv = [word.replace(PROMPT_ARGUMENT, text) for word in argv]
        snapshot = {
            "agent": agent.name,
            "kind": "command",
            "command": expansion.redact(command),
            "prompt": expansion.redact(cap_output(text.encode())),
            "prompt_via": "argument" if prompt_as_argument else "stdin",
        }
        env = dict(os.environ)
        env["JOBCTL_JOB"] = ctx.job
        env["JOBCTL_RUN_ID"] = str(ctx.run_id)
        env["JOBCTL_SCHEDULED_FOR"] = iso_z(ctx.scheduled_for) or ""
        env["JOBCTL_AGENT"] = agent.name

        started_at = utcnow()
        try:
            exited = await run_process(
                argv,
                env=env,
                timeout=ctx.timeout,
                stdin=None if prompt_as_argument else text.encode(),
                separate_stderr=True,
                kill_grace=self.kill_grace,
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
                details=details,
            )
        finished_at = exited.finished_at
        details["latency_ms"] = round(exited.elapsed * 1000)

        answer = expansion.redact(exited.output.text())
        error_text = expansion.redact(exited.errors.text())
        details["stderr"] = error_text
        code = exited.exit_code
        status = "failed"
        error: str | None
        if exited.timed_out:
            status = "timed_out"
            error = f"timed out after {format_duration(ctx.timeout)}; process group killed"
        elif code != 0:
            error = exit_error(code)
            excerpt = _last_lines(error_text)
            if excerpt:
                error += f": {excerpt}"
        elif not answer.strip():
            error = "empty answer"
        else:
            status, error = "succeeded", None
        return Outcome(
            status=status,
            started_at=started_at,
            finished_at=finished_at,
            exit_code=code,
            output=answer,
            error=error,
            snapshot=snapshot,
            details=details,
        )


def ask_now(agent: AgentProfile, prompt: str, ctx: FireContext) -> Outcome:
    """Ask once from synchronous code (`jobctl agent test`), closing the session after."""

    async def ask() -> Outcome:
        async with AgentFirer() as firer:
            return await firer.ask(agent, prompt, ctx)

    return asyncio.run(ask())


def _last_lines(text: str) -> str:
    """The end of stderr, where programs put the reason they stopped."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return one_line(" | ".join(lines[-3:]))[-EXCERPT:] if lines else ""


__all__ = ["ANTHROPIC_VERSION", "AgentFirer", "AgentProfile", "ask_now"]
