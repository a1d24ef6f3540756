"""Firing a claim: hand it to its action (HTTP, command, agent) and take back an Outcome.

`Runner` fires with the per-kind concurrency limits and turns a crash into a failed outcome;
it is the one fire path of the daemon and of `jobctl run`. Never touches the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from jobctl.models import ActionKind, Agent, AgentSpec, ExecSpec, HttpSpec
from jobctl.timeutil import iso_z, utcnow

if TYPE_CHECKING:
    from jobctl.actions import FireContext, Outcome
    from jobctl.actions.agent import AgentFirer
    from jobctl.actions.http import HttpFirer
    from jobctl.engine.claim import Claim
    from jobctl.engine.output import OutputWriter
    from jobctl.models import Team

log = logging.getLogger("jobctl.daemon")


class Actions(Protocol):
    """What fires a claim: `Firers` (the real actions), or a fake in a test."""

    async def fire(self, claim: Claim, env: Mapping[str, str]) -> Outcome: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Limits:
    """How many runs of each action kind fire at once."""

    http: int = 256
    agent: int = 8
    exec: int = 8


class Runner:
    """Fires claims: after their jitter, within the limits, never raising for a bug in an
    action (its run still gets a row: failed, "internal error")."""

    def __init__(
        self,
        limits: Limits,
        *,
        on_process: Callable[[int, int], None] | None = None,
        actions: Actions | None = None,
        output: OutputWriter | None = None,
    ) -> None:
        """`actions` replaces the real actions (a test's fake); the HTTP session of `firers`
        is the one notifications go out on either way. `output` gets runs' output as it is
        produced (None: only the finished run's output is kept)."""
        self.output = output
        self.firers = Firers(max_http=limits.http, on_process=on_process, output=output)
        self.actions: Actions = self.firers if actions is None else actions
        self._bounds: dict[str, asyncio.Semaphore] = {
            ActionKind.HTTP: asyncio.Semaphore(limits.http),
            ActionKind.AGENT: asyncio.Semaphore(limits.agent),
            ActionKind.EXEC: asyncio.Semaphore(limits.exec),
        }

    async def fire(self, claim: Claim, env: Mapping[str, str], *, waited: bool = False) -> Outcome:
        """`waited`: the caller has waited for the claim's delay already."""
        try:
            if claim.delay and not waited:  # from the claim's moment, however long its step took
                wait = claim.delay - (time.monotonic() - claim.made_at)
                if wait > 0:
                    await asyncio.sleep(wait)
            async with self._bounds[claim.job.action]:
                return await self.actions.fire(claim, env)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in an action must still finish its run row
            log.exception("run %d of %s crashed", claim.run_id, claim.job.name)
            from jobctl.actions import fail_before_start

            return fail_before_start(f"internal error: {exc!r}", utcnow())

    async def close(self) -> None:
        await self.actions.close()
        if self.actions is not self.firers:
            await self.firers.close()


class Firers:
    """The action runners of one process: one HTTP session, bounded per action kind."""

    def __init__(
        self,
        *,
        max_http: int = 256,
        on_process: Callable[[int, int], None] | None = None,
        output: OutputWriter | None = None,
    ) -> None:
        """`on_process(run_id, pid)` is told of each command a run starts (it must not raise):
        the caller records the process group, for a takeover should this process die.
        `output` is given the pieces of output runs produce."""
        self.max_http = max_http
        self.on_process = on_process
        self.output = output
        self._http: HttpFirer | None = None
        self._agents: AgentFirer | None = None
        # Imported with the first Firers, which fires (a command that only queues a run
        # through the engine does not pay for the actions), not at each fire.
        from jobctl.actions import FireContext

        self._context = FireContext

    @property
    def agents(self) -> AgentFirer:
        if self._agents is None:
            from jobctl.actions.agent import AgentFirer

            self._agents = AgentFirer()
        return self._agents

    @property
    def http(self) -> HttpFirer:
        # Created on first use: aiohttp costs ~150 ms to import, which exec-only runs skip.
        if self._http is None:
            from jobctl.actions.http import HttpFirer

            self._http = HttpFirer(max_connections=self.max_http)
        return self._http

    async def fire(self, claim: Claim, env: Mapping[str, str]) -> Outcome:
        context = self._context(
            job=claim.job.name,
            run_id=claim.run_id,
            scheduled_for=claim.scheduled_for,
            attempt=claim.attempt,
            timeout=claim.timeout,
            env=env,
            payload=claim.payload,
            payload_type=claim.payload_type,
        )
        spec = claim.job.spec
        # An HTTP run starts no process and produces no output as it goes: it is told of
        # neither (its output is the response's body, in its outcome).
        if not isinstance(spec, HttpSpec):
            if self.on_process is not None:
                report, run_id = self.on_process, claim.run_id
                context.on_process = lambda pid: report(run_id, pid)
            if self.output is not None:
                job = claim.job.name if claim.job.id is not None else None  # None: ad hoc
                context.on_piece = self.output.open(claim.run_id, job, claim.output_seq)
        try:
            if isinstance(spec, HttpSpec):
                outcome = await self.http.fire(spec, context)
            elif isinstance(spec, ExecSpec):
                from jobctl.actions.exec import run_command

                outcome = await run_command(spec, context)
            elif isinstance(spec, AgentSpec):
                outcome = await self._ask(claim, context)
            else:
                from jobctl.actions import fail_before_start

                outcome = fail_before_start(f"unknown action kind {claim.job.action!r}", utcnow())
        except asyncio.CancelledError as stopped:
            from jobctl.actions import Cancelled

            if isinstance(stopped, Cancelled):  # what it had produced is kept: mask it as well
                context.expansion.redact_outcome(stopped.outcome)
            raise
        finally:
            context.end_output()
        return context.expansion.redact_outcome(outcome)

    async def _ask(self, claim: Claim, context: FireContext) -> Outcome:
        from jobctl.actions import fail_before_start
        from jobctl.timeutil import get_zone

        spec = claim.job.spec
        assert isinstance(spec, AgentSpec)
        if spec.team and claim.team is None:
            name = spec.team
            return fail_before_start(f"team {name!r} does not exist (any more)", utcnow())
        if not spec.team and claim.agent is None:
            name = spec.agent
            return fail_before_start(f"agent {name!r} does not exist (any more)", utcnow())
        now = utcnow()
        context.placeholders = {
            "job": claim.job.name,
            "scheduled_for": iso_z(claim.scheduled_for) or "",
            "now": now.astimezone(get_zone(claim.job.timezone)).isoformat(timespec="seconds"),
            "last_output": claim.last_output,
            "payload": claim.payload or "",
        }
        if claim.team is not None:
            outcome = await self._ask_team(claim, claim.team, spec.prompt, context)
        else:
            assert claim.agent is not None
            outcome = await self.agents.ask(job_profile(claim.agent, spec), spec.prompt, context)
        deliver = spec.deliver
        if deliver:
            text = outcome.output or outcome.error or ""
            outcome.details["delivery"] = await self.http.post_json(
                deliver,
                {
                    "job": claim.job.name,
                    "run": claim.run_id,
                    "status": outcome.status,
                    "text": text,
                    "content": text[:2000],
                },
                context.env,
            )
        return outcome

    async def _ask_team(
        self, claim: Claim, team: Team, prompt: str, context: FireContext
    ) -> Outcome:
        from jobctl.actions.team import Resume, Seat, run_team

        seats = [Seat(member, claim.team_agents.get(member.agent)) for member in team.members]
        placeholders = dict(context.placeholders or {})
        resume = None
        if claim.resume_steps is not None and claim.resume_started_at is not None:
            resume = Resume(claim.resume_steps, claim.resume_started_at)
        return await run_team(
            self.agents,
            team.name,
            seats,
            prompt,
            context,
            placeholders,
            resume,
            can_wait=claim.job.id is not None,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._agents is not None:
            await self._agents.close()


def job_profile(agent: Agent, spec: AgentSpec) -> Agent:
    """The agent as this job asks it: the job's --model and --max-tokens over the agent's."""
    if spec.model is None and spec.max_tokens is None:
        return agent
    config = dict(agent.config)
    if spec.model is not None:
        config["model"] = spec.model
    if spec.max_tokens is not None:
        config["max_tokens"] = spec.max_tokens
    return replace(agent, config=config)
