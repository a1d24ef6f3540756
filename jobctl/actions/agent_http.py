"""The HTTP agent kinds: an OpenAI-compatible chat completion or an Anthropic Messages API
request, its answer read whole or, when someone watches the run, streamed as it is written
(falling back to the whole reply when the server does not stream). Also what the command kind
shares with them: placeholders and the snapshot of a request never sent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from jobctl.actions import (
    Cancelled,
    Expansion,
    FireContext,
    Outcome,
    cap_output,
    fail_before_start,
    interrupted,
)
from jobctl.actions.agent_answers import (
    Answer,
    Malformed,
    StreamFailed,
    error_excerpt,
    read_anthropic,
    read_openai,
    read_streamed,
    usage_of,
)
from jobctl.actions.request import (
    RequestHeaders,
    describe_error,
    read_limited,
    shown_template_headers,
    shown_url,
)
from jobctl.errors import Failed
from jobctl.models import OutputStream
from jobctl.secrets import redact_url
from jobctl.timeutil import format_duration, utcnow

ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_MAX_TOKENS = 1024  # the Messages API requires max_tokens; jobctl's default
ENDPOINTS = {"openai": "/chat/completions", "anthropic": "/messages"}
MAX_RESPONSE = 16 * 1024 * 1024  # bytes of an API response we are willing to parse
_CUT_SHORT = {"length", "max_tokens"}  # finish reasons of an answer cut at the token limit
_EVENT_STREAM = "text/event-stream"
_STREAMING_OPTIONS = ("stream", "stream_options")
_STREAMING_REFUSED = {400, 422}  # what a server that rejects unknown fields answers


class AgentProfile(Protocol):
    """What the action needs of an agent (jobctl.agents.Agent has it)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...


async def ask_http(
    session: aiohttp.ClientSession, agent: AgentProfile, prompt: str, ctx: FireContext
) -> Outcome:
    """Send `prompt` to an HTTP agent and read its answer, within ctx.timeout seconds."""
    config = agent.config
    kind = agent.kind
    model = str(config.get("model") or "")
    expansion = ctx.expansion
    try:
        url = expansion.url(str(config.get("url") or "")).rstrip("/") + ENDPOINTS[kind]
        text = fill_placeholders(expansion(prompt), ctx)
        system = expansion(str(config["system"])) if config.get("system") else None
        headers = RequestHeaders.expand(config.get("headers") or {}, expansion)
        key = _api_key(agent, expansion)
    except Failed as exc:
        return fail_before_start(
            expansion.redact(str(exc)), utcnow(), template_snapshot(agent, prompt)
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
    if ctx.streaming:  # someone watches the run: ask for the answer as it is written
        body["stream"] = True
        if kind == "openai":
            body["stream_options"] = {"include_usage": True}
    headers.replace("Content-Type", "application/json")
    headers.add_own(ctx)
    snapshot: dict[str, object] = {
        "agent": agent.name,
        "kind": kind,
        "url": shown_url(url, expansion),
        "model": model,
        "system": expansion.redact(system) if system is not None else None,
        "prompt": expansion.redact(cap_output(text.encode())),
        "headers": headers.shown(expansion),
    }
    details: dict[str, object] = {
        "agent": agent.name,
        "kind": kind,
        "model": model,
        "finish_reason": None,
        "usage": usage_of(None, None),
        "latency_ms": None,
    }
    reply = _Reply(ctx, snapshot, details)
    deadline = time.monotonic() + ctx.timeout  # for both requests, when there are two
    try:
        while True:
            left = max(0.001, deadline - time.monotonic())
            async with session.post(
                url,
                data=json.dumps(body).encode(),
                headers=headers.values,
                timeout=aiohttp.ClientTimeout(total=left),
            ) as response:
                reply.status, reply.reason = response.status, response.reason or ""
                if body.get("stream") and response.status in _STREAMING_REFUSED:
                    # a server that takes no streaming options: ask again for the whole answer
                    body = {k: v for k, v in body.items() if k not in _STREAMING_OPTIONS}
                    continue
                streamed = response.content_type == _EVENT_STREAM
                if 200 <= response.status <= 299 and streamed:
                    return await reply.streamed(response.content, kind)
                data, complete = await read_limited(response.content, MAX_RESPONSE)
                break
    except TimeoutError:
        return reply.timed_out()
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return reply.no_response(exc)
    except asyncio.CancelledError as stopped:  # cancelled, Ctrl-C, the daemon stopping
        raise reply.stopped() from stopped
    return reply.whole(data, complete, kind)


CHARS_PER_TOKEN = 4  # the usual rule of thumb, for servers that report no usage


class _Reply:
    """Turns what came back into the run's Outcome."""

    def __init__(self, ctx: FireContext, snapshot: dict[str, object], details: dict[str, object]):
        self.ctx = ctx
        self.snapshot = snapshot
        self.details = details
        self.started_at = utcnow()
        self.clock = time.monotonic()
        self.status: int | None = None
        self.reason = ""
        self.parts: list[str] = []  # a streamed answer's text so far

    def _estimated_usage(self, answer: str) -> dict[str, int | None]:
        """Tokens estimated at one per four characters of what was sent and answered: some
        servers (llama.cpp's Python server) stream without the usage chunk asked for, and
        a token budget must not count those calls as free."""
        sent = "".join(str(self.snapshot.get(key) or "") for key in ("system", "prompt"))
        return usage_of(-(-len(sent) // CHARS_PER_TOKEN), -(-len(answer) // CHARS_PER_TOKEN))

    def _outcome(self, status: str, error: str | None, output: str | None) -> Outcome:
        self.details["latency_ms"] = round((time.monotonic() - self.clock) * 1000)
        redact = self.ctx.expansion.redact
        return Outcome(
            status=status,
            started_at=self.started_at,
            finished_at=utcnow(),
            http_status=self.status,
            output=output,
            error=redact(error) if error is not None else None,
            snapshot=self.snapshot,
            details=self.details,
        )

    def timed_out(self) -> Outcome:
        error = f"timed out after {format_duration(self.ctx.timeout)}"
        return self._outcome("timed_out", error, self._partial())

    def no_response(self, exc: BaseException) -> Outcome:
        return self._outcome("failed", describe_error(exc), self._partial())

    def stopped(self) -> Cancelled:
        """The Cancelled to raise when the request is aborted: what was sent, and what a
        streamed answer had said so far."""
        self.details["latency_ms"] = round((time.monotonic() - self.clock) * 1000)
        return interrupted(
            self.started_at,
            http_status=self.status,
            output=self._partial(),
            snapshot=self.snapshot,
            details=self.details,
        )

    def _partial(self) -> str | None:
        """What a streamed answer had said before it broke off (None: nothing)."""
        text = "".join(self.parts)
        return self.ctx.expansion.redact(cap_output(text.encode())) if text else None

    async def streamed(self, content: aiohttp.StreamReader, kind: str) -> Outcome:
        def told(text: str) -> None:
            self.parts.append(text)
            self.ctx.on_output(OutputStream.ANSWER, text)

        try:
            answer = await read_streamed(content, kind, told, MAX_RESPONSE)
        except Malformed as exc:
            return self._outcome("failed", f"malformed response: {exc}", self._partial())
        except StreamFailed as exc:
            return self._outcome("failed", f"the server stopped: {exc}", self._partial())
        return self._answered(answer, raw_text=self._partial(), streamed=True)

    def whole(self, data: bytes, complete: bool, kind: str) -> Outcome:
        raw_text = self.ctx.expansion.redact(cap_output(data, complete=complete))
        status = self.status or 0
        if not 200 <= status <= 299:
            excerpt = error_excerpt(data)
            error = f"HTTP {status}{' ' + self.reason if self.reason else ''}"
            return self._outcome("failed", error + (f": {excerpt}" if excerpt else ""), raw_text)
        if not complete:
            error = f"malformed response: larger than {MAX_RESPONSE // (1024 * 1024)} MiB"
            return self._outcome("failed", error, raw_text)
        try:
            document = json.loads(data)
            if not isinstance(document, dict):
                raise Malformed("not a JSON object")
            answer = read_openai(document) if kind == "openai" else read_anthropic(document)
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
            return self._outcome("failed", f"malformed response: not JSON ({exc})", raw_text)
        except Malformed as exc:
            return self._outcome("failed", f"malformed response: {exc}", raw_text)
        if answer.refusal is None and answer.text.strip():
            self.ctx.on_output(OutputStream.ANSWER, answer.text)  # one piece: not streamed
        return self._answered(answer, raw_text)

    def _answered(self, answer: Answer, raw_text: str | None, *, streamed: bool = False) -> Outcome:
        details, redact = self.details, self.ctx.expansion.redact
        if answer.model:
            details["model"] = answer.model  # the model that answered, as it names itself
        details["finish_reason"] = answer.finish
        details["usage"] = answer.usage
        if streamed and answer.usage.get("total_tokens") is None:  # it streamed no usage
            details["usage"] = self._estimated_usage(answer.text)
            details["usage_estimated"] = True
        if answer.refusal is not None:
            output = redact(answer.text) or raw_text
            return self._outcome("failed", f"refused: {answer.refusal}", output)
        if not answer.text.strip():
            reason_text = f" (finish reason {answer.finish})" if answer.finish else ""
            return self._outcome("failed", f"empty answer{reason_text}", raw_text)
        if answer.finish in _CUT_SHORT:
            details["truncated"] = True
            details["note"] = (
                f"the answer was cut short at the token limit (finish reason {answer.finish})"
            )
        return self._outcome("succeeded", None, redact(cap_output(answer.text.encode())))


def fill_placeholders(text: str, ctx: FireContext) -> str:
    if ctx.placeholders is None:
        return text
    from jobctl.prompts import render_prompt

    return render_prompt(text, ctx.placeholders)


def template_snapshot(agent: AgentProfile, prompt: str) -> dict[str, object]:
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
    config: Mapping[str, object], model: str, system: str | None, prompt: str
) -> dict[str, object]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": prompt})
    body: dict[str, object] = {"model": model, "messages": messages}
    if config.get("temperature") is not None:
        body["temperature"] = config["temperature"]
    if config.get("max_tokens") is not None:
        body["max_tokens"] = config["max_tokens"]
    return body


def _anthropic_body(
    config: Mapping[str, object], model: str, system: str | None, prompt: str
) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model,
        "max_tokens": config.get("max_tokens") or ANTHROPIC_MAX_TOKENS,
    }
    if system is not None:
        body["system"] = system
    body["messages"] = [{"role": "user", "content": prompt}]
    if config.get("temperature") is not None:
        body["temperature"] = config["temperature"]
    return body


__all__ = [
    "ANTHROPIC_VERSION",
    "ENDPOINTS",
    "MAX_RESPONSE",
    "AgentProfile",
    "ask_http",
    "fill_placeholders",
    "template_snapshot",
]
