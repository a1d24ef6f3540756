"""A real model server that streams, for tests: OpenAI-compatible and Anthropic-shaped.

One aiohttp server on 127.0.0.1:0, in a background thread with its own loop, serves
`{openai_url}/chat/completions` and `{anthropic_url}/messages`. Asked with `"stream": true`,
it answers "answer to: <prompt>" one word at a time as server-sent events, `delay` seconds
apart (OpenAI: `data: {"choices": [{"delta": {"content": ...}}]}` ... `data: [DONE]`;
Anthropic: message_start, content_block_delta with text_delta ..., message_delta,
message_stop); asked without it, it answers with one JSON reply, as a server that cannot
stream does. Every request is recorded, and each word's send time (time.time()) too, so
that a test can compare when a word was sent with when a reader saw it.

The model name picks a misbehaviour:

    no-stream     ignores "stream": one JSON reply (the fallback)
    strict        refuses "stream" and "stream_options" (HTTP 400), as a server that rejects
                  fields it does not know does
    error-mid     two words, then an error event (OpenAI `{"error": ...}`, Anthropic `error`)
    cut           two words, then the connection ends without the end of the answer

    with StreamServer() as server:
        ... server.openai_url, server.anthropic_url, server.requests, server.sent
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from aiohttp import web

USAGE_IN, USAGE_OUT = 9, 4


def words_of(text: str) -> list[str]:
    """`text` in the pieces the server sends: each word with the space before it."""
    pieces: list[str] = []
    for index, word in enumerate(text.split(" ")):
        pieces.append(word if index == 0 else " " + word)
    return [piece for piece in pieces if piece]


class StreamServer:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds between two words
        self.requests: list[dict[str, Any]] = []  # the JSON bodies, in order
        self.sent: list[tuple[float, str]] = []  # (time.time(), word) as each word went out
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.base = ""

    def __enter__(self) -> StreamServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stream server did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def openai_url(self) -> str:
        return f"{self.base}/openai/v1"

    @property
    def anthropic_url(self) -> str:
        return f"{self.base}/anthropic/v1"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._setup())
        self._ready.set()
        self._loop.run_forever()
        assert self._runner is not None
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _setup(self) -> None:
        app = web.Application()
        app.router.add_post("/openai/v1/chat/completions", self._openai)
        app.router.add_post("/anthropic/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _body(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(await request.read())
        with self._lock:
            self.requests.append(body)
        return body

    async def _words(
        self, response: web.StreamResponse, words: list[str], event: Any, model: str
    ) -> bool:
        """Send each word as an event, `delay` apart; False if the model misbehaves after
        two words (the caller then ends the stream its way)."""
        for index, word in enumerate(words):
            if model in ("error-mid", "cut") and index == 2:
                return False
            if index and self.delay:
                await asyncio.sleep(self.delay)
            with self._lock:
                self.sent.append((time.time(), word))
            await response.write(event(word))
        return True

    # ---------------------------------------------------------------------- OpenAI

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        model = str(body.get("model"))
        if model == "strict" and ("stream" in body or "stream_options" in body):
            error = {"error": {"message": "Unrecognized request argument supplied: stream"}}
            return web.json_response(error, status=400)
        answer = f"answer to: {body['messages'][-1]['content']}"
        if not body.get("stream") or model == "no-stream":
            return web.json_response(
                {
                    "model": f"{model}-served",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT},
                }
            )
        response = await _event_stream(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {"model": f"{model}-served", "choices": [choice]}

        await response.write(_data(chunk({"role": "assistant", "content": ""})))
        if not await self._words(
            response, words_of(answer), lambda word: _data(chunk({"content": word})), model
        ):
            if model == "error-mid":
                await response.write(_data({"error": {"message": "the model is overloaded"}}))
            return response
        await response.write(_data(chunk({}, "stop")))
        if (body.get("stream_options") or {}).get("include_usage") and model != "no-usage":
            usage = {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT}
            await response.write(_data({"model": f"{model}-served", "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        return response

    # ---------------------------------------------------------------------- Anthropic

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        model = str(body.get("model"))
        answer = f"answer to: {body['messages'][-1]['content']}"
        if not body.get("stream") or model == "no-stream":
            return web.json_response(
                {
                    "type": "message",
                    "model": f"{model}-served",
                    "content": [{"type": "text", "text": answer}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
                }
            )
        response = await _event_stream(request)
        message = {
            "type": "message",
            "model": f"{model}-served",
            "content": [],
            "usage": {"input_tokens": USAGE_IN, "output_tokens": 1},
        }
        await response.write(_named("message_start", {"message": message}))
        block = {"index": 0, "content_block": {"type": "text", "text": ""}}
        await response.write(_named("content_block_start", block))
        await response.write(_named("ping", {}))

        def delta(word: str) -> bytes:
            return _named(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}}
            )

        if not await self._words(response, words_of(answer), delta, model):
            if model == "error-mid":
                error = {"error": {"type": "overloaded_error", "message": "Overloaded"}}
                await response.write(_named("error", error))
            return response
        await response.write(_named("content_block_stop", {"index": 0}))
        await response.write(
            _named(
                "message_delta",
                {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": USAGE_OUT}},
            )
        )
        await response.write(_named("message_stop", {}))
        return response


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


def _data(document: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(document)}\n\n".encode()


def _named(kind: str, document: dict[str, Any]) -> bytes:
    """An Anthropic event: its type on the `event:` line and in the data."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **document})}\n\n".encode()
