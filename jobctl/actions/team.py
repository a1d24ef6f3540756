"""A team's run: its members answer in turn, each a step; the last answer is the output.

Each member gets its role text, the job's prompt and what the members before it answered
(`{previous}` and `{step:N}` in the prompt; when the prompt uses neither, the previous
answer is added after it). The honest-outcome rules of one agent hold per step: a failed,
refused, empty or timed-out answer fails the step, and the run fails naming it. Steps are
streamed as ANSWER pieces, a header line before each, and recorded in the outcome's details
(`steps`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobctl.actions import Cancelled, FireContext, Outcome, fail_before_start
from jobctl.models import Member, OutputStream
from jobctl.timeutil import iso_z, utcnow

if TYPE_CHECKING:
    from jobctl.actions.agent import AgentFirer
    from jobctl.actions.agent_http import AgentProfile

_USES_ANSWERS = re.compile(r"\{(previous|step:[1-9][0-9]?)\}")


@dataclass(frozen=True)
class Seat:
    """A member with its agent's profile (None: the agent was removed since)."""

    member: Member
    agent: AgentProfile | None


def step_prompt(member: Member, prompt: str, number: int) -> str:
    """What member `number` (from 1) is sent, placeholders still to fill."""
    parts = [member.role] if member.role else []
    parts.append(prompt)
    if number > 1 and not _USES_ANSWERS.search(prompt):
        parts.append("The previous member answered:\n{previous}")
    return "\n\n".join(parts)


def step_record(number: int, member: Member, outcome: Outcome) -> dict[str, object]:
    """One step as the run keeps it (details' `steps`, the JSON's `steps`)."""
    details = outcome.details
    usage = details.get("usage") or {}
    snapshot = outcome.snapshot or {}
    return {
        "n": number,
        "agent": member.agent,
        "role": member.role,
        "model": details.get("model") or snapshot.get("model"),
        "prompt": snapshot.get("prompt"),
        "answer": outcome.output,
        "finish_reason": details.get("finish_reason"),
        "tokens_in": usage.get("prompt_tokens"),
        "tokens_out": usage.get("completion_tokens"),
        "latency_ms": details.get("latency_ms"),
        "status": outcome.status,
        "error": outcome.error,
        "started_at": iso_z(outcome.started_at),
        "finished_at": iso_z(outcome.finished_at),
    }


@dataclass(frozen=True)
class Resume:
    """Where a run approved at an approval point goes on: the steps it recorded before (the
    approval's last, decided) and when the run first started."""

    steps: list[dict[str, object]]
    started_at: datetime


async def run_team(
    firer: AgentFirer,
    team: str,
    seats: Sequence[Seat],
    prompt: str,
    ctx: FireContext,
    placeholders: Mapping[str, str],
    resume: Resume | None = None,
    *,
    can_wait: bool = True,
) -> Outcome:
    """Ask each member in turn within the run's timeout; stop at the first failed step, or
    at an approval point (the outcome is then `waiting`; `can_wait` False, for an ad hoc
    run that no daemon can take up again, fails there instead)."""
    started_at = resume.started_at if resume is not None else utcnow()
    deadline = time.monotonic() + ctx.timeout
    steps: list[dict[str, object]] = list(resume.steps) if resume is not None else []
    answers = _answers_of(steps)
    last: Outcome | None = None
    for number, seat in enumerate(seats, 1):
        if number <= len(steps):
            continue  # done before the approval
        header = f"── step {number}/{len(seats)}: {seat.member.label} ──\n"
        ctx.on_output(OutputStream.ANSWER, ("\n" if number > 1 else "") + header)
        if seat.member.approve is not None and not can_wait:
            message = f"step {number} is an approval point: an ad hoc run cannot wait for one"
            return fail_before_start(message, utcnow(), {"team": team, "steps": len(steps)})
        if seat.member.approve is not None:
            ctx.on_output(OutputStream.ANSWER, f"waiting for approval: {seat.member.approve}\n")
            steps.append(approval_record(number, seat.member.approve, utcnow()))
            return _waiting(team, steps, started_at, answers.get("previous"))
        ctx.placeholders = {**placeholders, **answers}
        ctx.timeout = max(0.001, deadline - time.monotonic())
        try:
            last = await _ask(firer, seat, step_prompt(seat.member, prompt, number), ctx)
        except Cancelled as stopped:
            steps.append(step_record(number, seat.member, stopped.outcome))
            stopped.outcome.details = {"team": team, "usage": total_usage(steps), "steps": steps}
            stopped.outcome.started_at = started_at
            raise
        steps.append(step_record(number, seat.member, last))
        if not last.ok:
            return _ended(last, team, steps, started_at, f"step {number} ({seat.member.agent})")
        answer = last.output or ""
        answers["previous"] = answer
        answers[f"step:{number}"] = answer
    if last is None:  # the team ended with its approval: the answer before it stands
        return _approved_at_the_end(team, steps, started_at, answers.get("previous"))
    return _ended(last, team, steps, started_at, None)


def approval_record(number: int, text: str, now: datetime) -> dict[str, object]:
    """An approval point's step, waiting for a decision."""
    return {
        "n": number,
        "agent": None,
        "approve": text,
        "status": "waiting",
        "note": None,
        "started_at": iso_z(now),
        "finished_at": None,
    }


def _answers_of(steps: Sequence[Mapping[str, object]]) -> dict[str, str]:
    """{previous} and {step:N} from the steps done."""
    answers: dict[str, str] = {}
    for step in steps:
        if step.get("answer") is not None:
            answers["previous"] = answers[f"step:{step['n']}"] = str(step["answer"])
    return answers


def _waiting(
    team: str, steps: list[dict[str, object]], started_at: datetime, so_far: str | None
) -> Outcome:
    """The run stops at an approval point: `waiting`, with what the team produced so far."""
    step = steps[-1]
    return Outcome(
        status="waiting",
        started_at=started_at,
        finished_at=utcnow(),
        output=so_far,
        snapshot={"team": team, "steps": len(steps)},
        details={
            "team": team,
            "usage": total_usage(steps),
            "steps": steps,
            "approval": {
                "step": step["n"],
                "text": step["approve"],
                "asked_at": step["started_at"],
            },
        },
    )


def _approved_at_the_end(
    team: str, steps: list[dict[str, object]], started_at: datetime, so_far: str | None
) -> Outcome:
    return Outcome(
        status="succeeded" if so_far else "failed",
        started_at=started_at,
        finished_at=utcnow(),
        output=so_far,
        error=None if so_far else "empty answer",
        snapshot={"team": team, "steps": len(steps)},
        details={"team": team, "usage": total_usage(steps), "steps": steps},
    )


async def _ask(firer: AgentFirer, seat: Seat, text: str, ctx: FireContext) -> Outcome:
    if seat.agent is None:
        return fail_before_start(f"agent {seat.member.agent!r} does not exist (any more)", utcnow())
    return await firer.ask(seat.agent, text, ctx)


def _ended(
    last: Outcome,
    team: str,
    steps: list[dict[str, object]],
    started_at: datetime,
    failed: str | None,
) -> Outcome:
    """The run's outcome: the last step's, over the whole run, naming a failed step."""
    error = f"{failed} {last.status}: {last.error}" if failed is not None else None
    return Outcome(
        status=last.status,
        started_at=started_at,
        finished_at=last.finished_at,
        exit_code=last.exit_code,
        output=last.output,
        error=error,
        snapshot={"team": team, "steps": len(steps)},
        details={"team": team, "usage": total_usage(steps), "steps": steps},
    )


def total_usage(steps: Sequence[Mapping[str, Any]]) -> dict[str, int | None]:
    """The run's token use, the sum of its steps' (in the shape of one agent run's `usage`,
    so that whatever counts agent runs' tokens counts a team's); None when no step knew."""
    tokens_in = [s["tokens_in"] for s in steps if s.get("tokens_in") is not None]
    tokens_out = [s["tokens_out"] for s in steps if s.get("tokens_out") is not None]
    if not tokens_in and not tokens_out:
        return {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    return {
        "prompt_tokens": sum(tokens_in),
        "completion_tokens": sum(tokens_out),
        "total_tokens": sum(tokens_in) + sum(tokens_out),
    }
