"""The agent action: a prompt in, the agent's answer out, as an Outcome.

The owner of the agent protocols: OpenAI-compatible chat completions, the Anthropic Messages
API (both through one lazily created aiohttp session) and local command agents. Only honest
answers succeed: HTTP errors, refusals, empty and malformed answers are failed runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import time
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from jobctl.actions import (
    Expansion,
    FireContext,
    Outcome,
    cap_output,
    fail_before_start,
    interrupted,
)
from jobctl.actions.process import (
    KILL_GRACE,
    CannotStart,
    StoppedEarly,
    exit_error,
    run_process,
)
from jobctl.actions.request import (
    RequestHeaders,
    SessionOwner,
    describe_error,
    read_limited,
    shown_template_headers,
    shown_url,
)
from jobctl.errors import Failed
from jobctl.secrets import redact_url
from jobctl.timeutil import format_duration, iso_z, utcnow

ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_MAX_TOKENS = 1024  # the Messages API requires max_tokens; jobctl's default
PROMPT_ARGUMENT = "{prompt}"
ENDPOINTS = {"openai": "/chat/completions", "anthropic": "/messages"}
MAX_RESPONSE = 16 * 1024 * 1024  # bytes of an API response we are willing to parse
EXCERPT = 300  # characters of an error body or stderr quoted in a run's error
_CUT_SHORT = {"length", "max_tokens"}  # finish reasons of an answer cut at the token limit


class AgentProfile(Protocol):
    """What the action needs of an agent (jobctl.agents.Agent has it)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...


class _Malformed(Exception):
    """The response is not the shape the API promises."""


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
            return await self._ask_http(agent, prompt, ctx)
        if agent.kind == "command":
            return await self._ask_command(agent, prompt, ctx)
        return fail_before_start(
            f"unknown agent kind {agent.kind!r}",
            utcnow(),
            {"agent": agent.name, "kind": agent.kind},
        )

    # ------------------------------------------------------------------------- HTTP kinds

    async def _ask_http(self, agent: AgentProfile, prompt: str, ctx: FireContext) -> Outcome:
        config = agent.config
        kind = agent.kind
        model = str(config.get("model") or "")
        expansion = ctx.expansion
        try:
            url = expansion.url(str(config.get("url") or "")).rstrip("/") + ENDPOINTS[kind]
            text = _fill_placeholders(expansion(prompt), ctx)
            system = expansion(str(config["system"])) if config.get("system") else None
            headers = RequestHeaders.expand(config.get("headers") or {}, expansion)
            key = _api_key(agent, expansion)
        except Failed as exc:
            return fail_before_start(
                expansion.redact(str(exc)), utcnow(), _template_snapshot(agent, prompt)
            )
        if kind == "openai":
            body = _openai_body(config, model, system, text)
            if key is not None:
                headers.replace("Authorization", f"Bearer {key}")
        else:
            body = _anthropic_body(config, model, system, text)
            if key is not None:
                headers.replace("x-api-key", key)
            if not headers.has("anthropic-version"):
                headers.values["anthropic-version"] = ANTHROPIC_VERSION
        headers.replace("Content-Type", "application/json")
        headers.add_own(ctx)
        snapshot = {
            "agent": agent.name,
            "kind": kind,
            "url": shown_url(url, expansion),
            "model": model,
            "system": expansion.redact(system) if system is not None else None,
            "prompt": expansion.redact(cap_output(text.encode())),
            "headers": headers.shown(expansion),
        }
        details: dict[str, Any] = {
            "agent": agent.name,
            "kind": kind,
            "model": model,
            "finish_reason": None,
            "usage": _usage(None, None),
            "latency_ms": None,
        }

        session = self._get_session()
        started_at = utcnow()
        clock = time.monotonic()
        try:
            async with session.post(
                url,
                data=json.dumps(body).encode(),
                headers=headers.values,
                timeout=aiohttp.ClientTimeout(total=ctx.timeout),
            ) as response:
                data, complete = await read_limited(response.content, MAX_RESPONSE)
                status = response.status
                reason = response.reason or ""
        except TimeoutError:
            details["latency_ms"] = _elapsed_ms(clock)
            return Outcome(
                status="timed_out",
                started_at=started_at,
                finished_at=utcnow(),
                error=f"timed out after {format_duration(ctx.timeout)}",
                snapshot=snapshot,
                details=details,
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            details["latency_ms"] = _elapsed_ms(clock)
            return Outcome(
                status="failed",
                started_at=started_at,
                finished_at=utcnow(),
                error=expansion.redact(describe_error(exc)),
                snapshot=snapshot,
                details=details,
            )
        finished_at = utcnow()
        details["latency_ms"] = _elapsed_ms(clock)
        raw_text = expansion.redact(cap_output(data, complete=complete))

        def failed(error: str, output: str | None = raw_text) -> Outcome:
            return Outcome(
                status="failed",
                started_at=started_at,
                finished_at=finished_at,
                http_status=status,
                output=output,
                error=expansion.redact(error),
                snapshot=snapshot,
                details=details,
            )

        if not 200 <= status <= 299:
            excerpt = _error_excerpt(data)
            return failed(
                f"HTTP {status}{' ' + reason if reason else ''}"
                + (f": {excerpt}" if excerpt else "")
            )
        if not complete:
            return failed(f"malformed response: larger than {MAX_RESPONSE // (1024 * 1024)} MiB")
        try:
            document = json.loads(data)
            if not isinstance(document, dict):
                raise _Malformed("not a JSON object")
            if kind == "openai":
                answer, finish, refusal, usage = _read_openai(document)
            else:
                answer, finish, refusal, usage = _read_anthropic(document)
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
            return failed(f"malformed response: not JSON ({exc})")
        except _Malformed as exc:
            return failed(f"malformed response: {exc}")
        if isinstance(document.get("model"), str) and document["model"]:
            details["model"] = document["model"]  # the model that answered, as it names itself
        details["finish_reason"] = finish
        details["usage"] = usage
        if refusal is not None:
            return failed(f"refused: {refusal}", output=expansion.redact(answer) or raw_text)
        if not answer.strip():
            reason_text = f" (finish reason {finish})" if finish else ""
            return failed(f"empty answer{reason_text}")
        if finish in _CUT_SHORT:
            details["truncated"] = True
            details["note"] = (
                f"the answer was cut short at the token limit (finish reason {finish})"
            )
        return Outcome(
            status="succeeded",
            started_at=started_at,
            finished_at=finished_at,
            http_status=status,
            output=expansion.redact(cap_output(answer.encode())),
            snapshot=snapshot,
            details=details,
        )

    # --------------------------------------------------------------------- command kind

    async def _ask_command(self, agent: AgentProfile, prompt: str, ctx: FireContext) -> Outcome:
        command = str(agent.config.get("command") or "")
        expansion = ctx.expansion
        details: dict[str, Any] = {
            "agent": agent.name,
            "kind": "command",
            "model": None,
            "finish_reason": None,
            "usage": _usage(None, None),
            "latency_ms": None,
        }
        try:
            text = _fill_placeholders(expansion(prompt), ctx)
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
                expansion.redact(str(exc)), utcnow(), _template_snapshot(agent, prompt)
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


# ----------------------------------------------------------------------------- helpers


def _fill_placeholders(text: str, ctx: FireContext) -> str:
    if ctx.placeholders is None:
        return text
    from jobctl.prompts import render_prompt

    return render_prompt(text, ctx.placeholders)


def _api_key(agent: AgentProfile, expansion: Expansion) -> str | None:
    """The key from the environment variable the agent names; registered for redaction."""
    env_name = agent.config.get("api_key_env")
    if not env_name:
        return None
    if not expansion.env.get(env_name):
        raise Failed(
            # no "agent 'x':" here: `agent test` names the agent, and a run's job does
            f"the environment variable {env_name} (its --api-key-env) is not set: set it in "
            "the daemon's environment or its env file"
        )
    return expansion(f"${{{env_name}}}")  # through Expansion, so the key is redacted everywhere


def _openai_body(
    config: Mapping[str, Any], model: str, system: str | None, prompt: str
) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if config.get("temperature") is not None:
        body["temperature"] = config["temperature"]
    if config.get("max_tokens") is not None:
        body["max_tokens"] = config["max_tokens"]
    return body


def _anthropic_body(
    config: Mapping[str, Any], model: str, system: str | None, prompt: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": config.get("max_tokens") or ANTHROPIC_MAX_TOKENS,
    }
    if system is not None:
        body["system"] = system
    body["messages"] = [{"role": "user", "content": prompt}]
    if config.get("temperature") is not None:
        body["temperature"] = config["temperature"]
    return body


Answer = tuple[str, str | None, str | None, dict[str, int | None]]


def _read_openai(document: Mapping[str, Any]) -> Answer:
    """(answer, finish reason, refusal or None, usage) of a chat completion."""
    choices = document.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Malformed("no choices")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise _Malformed("choices[0] has no message")
    message = choice["message"]
    finish = choice.get("finish_reason")
    finish = str(finish) if finish is not None else None
    answer = _text_of(message.get("content"), "choices[0].message.content")
    usage = _mapping(document.get("usage"))
    tokens = _usage(
        usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    )
    refusal: str | None = None
    if isinstance(message.get("refusal"), str) and message["refusal"].strip():
        refusal = _one_line(message["refusal"])
    elif finish == "content_filter":
        refusal = "the provider's content filter stopped the answer (finish reason content_filter)"
    return answer, finish, refusal, tokens


def _read_anthropic(document: Mapping[str, Any]) -> Answer:
    """(answer, stop reason, refusal or None, usage) of a Messages API reply."""
    blocks = document.get("content")
    if not isinstance(blocks, list):
        raise _Malformed("no content")
    parts = []
    for block in blocks:
        if not isinstance(block, dict):
            raise _Malformed("a content block is not an object")
        if block.get("type") == "text":
            if not isinstance(block.get("text"), str):
                raise _Malformed("a text block has no text")
            parts.append(block["text"])
    finish = document.get("stop_reason")
    finish = str(finish) if finish is not None else None
    usage = _mapping(document.get("usage"))
    tokens = _usage(usage.get("input_tokens"), usage.get("output_tokens"))
    answer = "".join(parts)
    refusal = None
    if finish == "refusal":
        refusal = "the model declined to answer (stop reason refusal)"
    return answer, finish, refusal, tokens


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_of(content: Any, where: str) -> str:
    """Message content: a string, null (nothing said), or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    raise _Malformed(f"{where} is not text")


def _usage(prompt: Any, completion: Any, total: Any = None) -> dict[str, int | None]:
    def count(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    prompt_tokens, completion_tokens, total_tokens = count(prompt), count(completion), count(total)
    if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
        total_tokens = prompt_tokens + completion_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total_tokens,
    }


def _error_excerpt(data: bytes) -> str:
    """The error message of an API error body (both APIs nest it in error.message), else the
    start of the body, on one line."""
    text = data.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
    return _one_line(text)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT else line[: EXCERPT - 1] + "…"


def _last_lines(text: str) -> str:
    """The end of stderr, where programs put the reason they stopped."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return _one_line(" | ".join(lines[-3:]))[-EXCERPT:] if lines else ""


def _elapsed_ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def _template_snapshot(agent: AgentProfile, prompt: str) -> dict[str, Any]:
    """A snapshot when nothing was sent: the profile as written, literal secrets hidden."""
    config = agent.config
    if agent.kind == "command":
        return {
            "agent": agent.name,
            "kind": agent.kind,
            "command": config.get("command"),
            "prompt": cap_output(prompt.encode()),
        }
    return {
        "agent": agent.name,
        "kind": agent.kind,
        "url": redact_url(str(config.get("url") or "")),
        "model": config.get("model"),
        "system": config.get("system"),
        "prompt": cap_output(prompt.encode()),
        "headers": shown_template_headers(config.get("headers") or {}),
    }


__all__ = ["ANTHROPIC_VERSION", "AgentFirer", "AgentProfile", "ask_now"]
