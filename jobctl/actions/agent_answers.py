"""Reading an agent API's answer: a whole JSON reply, or one streamed as server-sent events.

OpenAI-compatible chat completions (`"stream": true`: `data: {"choices": [{"delta": ...}]}`
lines up to `data: [DONE]`) and the Anthropic Messages API (`content_block_delta` events with
`text_delta`s). Each reader returns an `Answer`; a reply not of the promised shape raises
`Malformed`, an error reported in the middle of a stream raises `StreamFailed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

EXCERPT = 300  # characters of an error body or stderr quoted in a run's error


class Malformed(Exception):
    """The response is not the shape the API promises."""


class StreamFailed(Exception):
    """The server reported an error in the middle of a streamed answer; the message says it."""


@dataclass
class Answer:
    """What an agent answered: its text, why it stopped, a refusal, the tokens it counted and
    the model that answered (as it names itself; None when it does not say)."""

    text: str
    finish: str | None = None
    refusal: str | None = None
    usage: dict[str, int | None] = field(default_factory=lambda: usage_of(None, None))
    model: str | None = None


def read_openai(document: Mapping[str, object]) -> Answer:
    """A chat completion, read whole."""
    choices = document.get("choices")
    if not isinstance(choices, list) or not choices:
        raise Malformed("no choices")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise Malformed("choices[0] has no message")
    message = choice["message"]
    finish = choice.get("finish_reason")
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else None
    return Answer(
        text=_text_of(message.get("content"), "choices[0].message.content"),
        finish=str(finish) if finish is not None else None,
        refusal=_openai_refusal(refusal, finish),
        usage=_openai_usage(document.get("usage")),
        model=_model_of(document),
    )


def read_anthropic(document: Mapping[str, object]) -> Answer:
    """A Messages API reply, read whole."""
    blocks = document.get("content")
    if not isinstance(blocks, list):
        raise Malformed("no content")
    parts = []
    for block in blocks:
        if not isinstance(block, dict):
            raise Malformed("a content block is not an object")
        if block.get("type") == "text":
            if not isinstance(block.get("text"), str):
                raise Malformed("a text block has no text")
            parts.append(block["text"])
    finish = document.get("stop_reason")
    usage = _mapping(document.get("usage"))
    return Answer(
        text="".join(parts),
        finish=str(finish) if finish is not None else None,
        refusal=_anthropic_refusal(finish),
        usage=usage_of(usage.get("input_tokens"), usage.get("output_tokens")),
        model=_model_of(document),
    )


async def read_streamed(
    content: aiohttp.StreamReader, kind: str, on_text: Callable[[str], None], limit: int
) -> Answer:
    """A streamed answer (`kind` 'openai' or 'anthropic'), each piece of text told to
    `on_text` as it arrives; raises Malformed (also past `limit` bytes) or StreamFailed."""
    stream = _OpenAIStream() if kind == "openai" else _AnthropicStream()
    size = 0
    data: list[str] = []
    while not stream.done:
        try:
            raw = await content.readline()
        except ValueError as exc:  # a line longer than the reader's buffer
            raise Malformed(f"a streamed line is too long ({exc})") from None
        if not raw:
            break
        size += len(raw)
        if size > limit:
            raise Malformed(f"larger than {limit // (1024 * 1024)} MiB")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:  # a blank line ends an event
            text = stream.take("\n".join(data))
            data = []
            if text:
                on_text(text)
    if data and not stream.done:  # a last event without its blank line
        text = stream.take("\n".join(data))
        if text:
            on_text(text)
    return stream.answer()


class _OpenAIStream:
    """Chat completion chunks: choices[0].delta.content pieces, up to `[DONE]`."""

    def __init__(self) -> None:
        self.done = False
        self.parts: list[str] = []
        self.refusal: list[str] = []
        self.finish: str | None = None
        self.usage: dict[str, int | None] = usage_of(None, None)
        self.model: str | None = None

    def take(self, data: str) -> str:
        if data.strip() == "[DONE]":
            self.done = True
            return ""
        chunk = _event(data)
        if "error" in chunk:
            raise StreamFailed(_error_message(chunk) or "the server reported an error")
        self.model = _model_of(chunk) or self.model
        if isinstance(chunk.get("usage"), dict):
            self.usage = _openai_usage(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""  # e.g. the usage chunk, which has no choices
        choice = choices[0]
        if choice.get("finish_reason") is not None:
            self.finish = str(choice["finish_reason"])
        delta = _mapping(choice.get("delta"))
        refusal = delta.get("refusal")
        if isinstance(refusal, str):
            self.refusal.append(refusal)
        text = _text_of(delta.get("content"), "choices[0].delta.content")
        self.parts.append(text)
        return text

    def answer(self) -> Answer:
        if not self.done and self.finish is None:
            raise Malformed("the stream ended before the answer did")
        return Answer(
            text="".join(self.parts),
            finish=self.finish,
            refusal=_openai_refusal("".join(self.refusal) or None, self.finish),
            usage=self.usage,
            model=self.model,
        )


class _AnthropicStream:
    """Messages API events: message_start, content_block_delta (text_delta), message_delta
    (stop reason, output tokens), message_stop; `error` on failure."""

    def __init__(self) -> None:
        self.done = False
        self.parts: list[str] = []
        self.finish: str | None = None
        self.input_tokens: object = None
        self.output_tokens: object = None
        self.model: str | None = None

    def take(self, data: str) -> str:
        event = _event(data)
        kind = event.get("type")
        if kind == "error":
            raise StreamFailed(_error_message(event) or "the server reported an error")
        if kind == "message_start":
            message = _mapping(event.get("message"))
            self.model = _model_of(message)
            self.input_tokens = _mapping(message.get("usage")).get("input_tokens")
        elif kind == "content_block_delta":
            delta = _mapping(event.get("delta"))
            text = delta.get("text")
            if delta.get("type") == "text_delta" and isinstance(text, str):
                self.parts.append(text)
                return text
        elif kind == "message_delta":
            stop = _mapping(event.get("delta")).get("stop_reason")
            self.finish = str(stop) if stop is not None else self.finish
            self.output_tokens = _mapping(event.get("usage")).get("output_tokens")
        elif kind == "message_stop":
            self.done = True
        return ""

    def answer(self) -> Answer:
        if not self.done and self.finish is None:
            raise Malformed("the stream ended before the answer did")
        return Answer(
            text="".join(self.parts),
            finish=self.finish,
            refusal=_anthropic_refusal(self.finish),
            usage=usage_of(self.input_tokens, self.output_tokens),
            model=self.model,
        )


def _event(data: str) -> Mapping[str, object]:
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise Malformed(f"a streamed event is not JSON ({exc})") from None
    if not isinstance(event, dict):
        raise Malformed("a streamed event is not a JSON object")
    return event


def _error_message(document: Mapping[str, object]) -> str:
    error = document.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return one_line(error["message"])
    return one_line(error) if isinstance(error, str) else ""


def _openai_refusal(refusal: str | None, finish: object) -> str | None:
    if refusal is not None and refusal.strip():
        return one_line(refusal)
    if finish == "content_filter":
        return "the provider's content filter stopped the answer (finish reason content_filter)"
    return None


def _anthropic_refusal(finish: object) -> str | None:
    return "the model declined to answer (stop reason refusal)" if finish == "refusal" else None


def _openai_usage(value: object) -> dict[str, int | None]:
    usage = _mapping(value)
    return usage_of(
        usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    )


def _model_of(document: Mapping[str, object]) -> str | None:
    model = document.get("model")
    return model if isinstance(model, str) and model else None


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _text_of(content: object, where: str) -> str:
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
    raise Malformed(f"{where} is not text")


def usage_of(prompt: object, completion: object, total: object = None) -> dict[str, int | None]:
    def count(value: object) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    prompt_tokens, completion_tokens, total_tokens = count(prompt), count(completion), count(total)
    if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
        total_tokens = prompt_tokens + completion_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total_tokens,
    }


def error_excerpt(data: bytes) -> str:
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
    return one_line(text)


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT else line[: EXCERPT - 1] + "…"


__all__ = [
    "EXCERPT",
    "Answer",
    "Malformed",
    "StreamFailed",
    "error_excerpt",
    "one_line",
    "read_anthropic",
    "read_openai",
    "read_streamed",
    "usage_of",
]
