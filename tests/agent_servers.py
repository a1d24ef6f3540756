"""Real agent endpoints for tests: an OpenAI-compatible and an Anthropic-shaped API.

One aiohttp server on 127.0.0.1:0, in a background thread with its own loop, serves both
shapes: `{openai_url}/chat/completions` and `{anthropic_url}/messages`. It answers
"answer to: <prompt>" and records every request; the model name picks a misbehaviour:

    error-500, error-429    an HTTP error with an API-style error body
    error-401-echo          401 whose message repeats the key it was sent (a careless server)
    empty                   an answer with no text
    refuse                  openai: finish_reason content_filter; anthropic: stop_reason refusal
    refusal-field           openai: message.refusal set
    malformed               200 with a body that is not JSON
    no-choices              openai: "choices": []; anthropic: no "content"
    slow                    waits (up to 30 s, or until the server closes) before answering
    length                  cut at the token limit (openai length, anthropic max_tokens)
    parts                   openai: content as a list of text parts
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

HERE = Path(__file__).resolve().parent
FAKE_AGENT = HERE / "fake_agent.py"


def fake_agent_command(*args: str) -> str:
    """A command agent's command line running tests/fake_agent.py with `args`."""
    return shlex.join([sys.executable, "-S", str(FAKE_AGENT), *args])


@dataclass
class Recorded:
    kind: str  # 'openai' | 'anthropic'
    path: str
    headers: dict[str, str]  # names lower-cased; repeated ones joined with ', '
    body: Any  # the parsed JSON body


class AgentServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.base = ""

    # --------------------------------------------------------------------- lifecycle

    def start(self) -> AgentServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the agent server did not start")
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._setup())
        self._ready.set()
        self._loop.run_forever()
        assert self._runner is not None
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _setup(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/openai/v1/chat/completions", self._openai)
        app.router.add_post("/anthropic/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def close(self) -> None:
        def stop() -> None:
            assert self._closing is not None
            self._closing.set()  # lets slow handlers end, so cleanup does not wait
            self._loop.call_later(0.05, self._loop.stop)

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)

    @property
    def openai_url(self) -> str:
        return f"{self.base}/openai/v1"

    @property
    def anthropic_url(self) -> str:
        return f"{self.base}/anthropic/v1"

    def last(self, kind: str) -> Recorded:
        with self._lock:
            return [r for r in self.requests if r.kind == kind][-1]

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    # ---------------------------------------------------------------------- handlers

    async def _record(self, kind: str, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = json.loads(raw)
        with self._lock:
            # a header sent twice shows as "a, b", so tests can tell
            headers = {k.lower(): ", ".join(request.headers.getall(k)) for k in request.headers}
            self.requests.append(Recorded(kind, request.path, headers, body))
        return body  # type: ignore[no-any-return]

    async def _misbehave(self, model: str, key: str) -> web.Response | None:
        """The replies both shapes share; None means answer normally."""
        if model.startswith("error-"):
            status = int(model.split("-")[1])
            message = {
                500: "internal trouble",
                429: "rate limited, slow down",
                401: f"invalid api key {key}",
            }[status]
            return web.json_response(
                {"error": {"message": message, "type": "error"}}, status=status
            )
        if model == "malformed":
            return web.Response(text="this is {not json", content_type="application/json")
        if model == "slow":
            assert self._closing is not None
            try:
                await asyncio.wait_for(self._closing.wait(), 30)
            except TimeoutError:
                pass
            return web.json_response({"error": {"message": "too late"}}, status=504)
        return None

    async def _openai(self, request: web.Request) -> web.Response:
        body = await self._record("openai", request)
        model = str(body.get("model"))
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        early = await self._misbehave(model, key)
        if early is not None:
            return early
        prompt = body["messages"][-1]["content"]
        message: dict[str, Any] = {"role": "assistant", "content": f"answer to: {prompt}"}
        finish = "stop"
        if model == "empty":
            message["content"] = "  \n"
        elif model == "refuse":
            message["content"], finish = None, "content_filter"
        elif model == "refusal-field":
            message["content"], message["refusal"] = None, "I can't help with that."
        elif model == "no-choices":
            return web.json_response({"id": "x", "object": "chat.completion", "choices": []})
        elif model == "length":
            message["content"], finish = "a partial ans", "length"
        elif model == "parts":
            message["content"] = [
                {"type": "text", "text": "part one, "},
                {"type": "text", "text": "part two"},
            ]
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": f"{model}-served",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )

    async def _anthropic(self, request: web.Request) -> web.Response:
        body = await self._record("anthropic", request)
        model = str(body.get("model"))
        early = await self._misbehave(model, request.headers.get("x-api-key", ""))
        if early is not None:
            return early
        prompt = body["messages"][-1]["content"]
        content: list[dict[str, Any]] = [
            {"type": "text", "text": "answer to: "},
            {"type": "tool_use", "id": "t1", "name": "noop", "input": {}},  # not text: skipped
            {"type": "text", "text": prompt},
        ]
        stop = "end_turn"
        if model == "empty":
            content = []
        elif model == "refuse":
            content, stop = [], "refusal"
        elif model == "no-choices":
            return web.json_response({"id": "msg_1", "type": "message", "role": "assistant"})
        elif model == "length":
            content, stop = [{"type": "text", "text": "a partial ans"}], "max_tokens"
        return web.json_response(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": f"{model}-served",
                "content": content,
                "stop_reason": stop,
                "usage": {"input_tokens": 13, "output_tokens": 5},
            }
        )


def start_agent_server() -> AgentServer:
    return AgentServer().start()
