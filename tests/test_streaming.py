"""Output as it is produced: commands' stdout and stderr, agents' answers streamed, pieces
written in batches while the run is in flight, and `jobctl run` printing them as they come."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobctl.actions import OUTPUT_CAP, FireContext, Outcome
from jobctl.actions.agent import AgentFirer
from jobctl.actions.process import run_process
from jobctl.engine.output import TRUNCATED, OutputWriter
from jobctl.models import Agent, EventType, OutputStream
from jobctl.store import open_store
from tests.agent_servers import AgentServer, start_agent_server
from tests.realparts import (
    ROOT,
    DaemonProcess,
    add_job,
    jobctl_command,
    query,
    run_jobctl,
)
from tests.stream_server import USAGE_IN, USAGE_OUT, StreamServer, words_of

SLOT = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SECRET = "supersecret-token-42"

Piece = tuple[OutputStream, str]


def context(pieces: list[Piece] | None, env: dict[str, str] | None = None) -> FireContext:
    ctx = FireContext(
        job="digest", run_id=7, scheduled_for=SLOT, attempt=1, timeout=10, env=env or {}
    )
    if pieces is not None:
        ctx.on_piece = lambda stream, text: pieces.append((stream, text))
    return ctx


def ask(agent: Agent, ctx: FireContext, prompt: str = "hello there world") -> Outcome:
    async def scenario() -> Outcome:
        async with AgentFirer() as firer:
            outcome = await firer.ask(agent, prompt, ctx)
        ctx.end_output()
        return outcome

    return asyncio.run(scenario())


@pytest.fixture
def streamer() -> Iterator[StreamServer]:
    with StreamServer() as server:
        yield server


def agent_of(server: StreamServer, kind: str, model: str = "echo") -> Agent:
    url = server.openai_url if kind == "openai" else server.anthropic_url
    return Agent("helper", kind, {"url": url, "model": model})


# -------------------------------------------------------------------- commands


def test_stdout_and_stderr_come_apart_in_the_order_they_were_written() -> None:
    script = "printf 'out1\\n'; sleep 0.1; printf 'err1\\n' >&2; sleep 0.1; printf 'out2\\n'"
    pieces: list[Piece] = []

    async def scenario() -> Any:
        return await run_process(
            ["/bin/sh", "-c", script],
            env=dict(os.environ),
            timeout=10,
            on_output=lambda stream, text: pieces.append((stream, text)),
        )

    exited = asyncio.run(scenario())
    assert [piece for piece in pieces if piece[1]] == [
        (OutputStream.STDOUT, "out1\n"),
        (OutputStream.STDERR, "err1\n"),
        (OutputStream.STDOUT, "out2\n"),
    ]
    assert exited.output.text() == "out1\nerr1\nout2\n"  # the finished output, as before
    assert exited.errors.text() == ""


def test_a_secret_cut_between_two_pieces_is_never_shown() -> None:
    pieces: list[Piece] = []
    ctx = context(pieces, {"TOKEN": SECRET})
    assert ctx.expansion("${TOKEN}") == SECRET
    ctx.on_output(OutputStream.STDOUT, "the key is " + SECRET[:8])
    ctx.on_output(OutputStream.STDOUT, SECRET[8:] + " and more text after it, " + "x" * 200)
    ctx.end_output()
    shown = "".join(text for _stream, text in pieces)
    assert shown == "the key is *** and more text after it, " + "x" * 200
    assert all(SECRET[:4] not in text for _stream, text in pieces)
    assert len(pieces) >= 2  # held back only near the end, not to the end of the run


def test_text_that_cannot_begin_a_secret_is_not_held_back() -> None:
    pieces: list[Piece] = []
    ctx = context(pieces, {"TOKEN": SECRET})
    ctx.expansion("${TOKEN}")
    words = ["Once", " upon", " a", " time", " there", " was", " a", " key:", " "]
    for word in words:
        ctx.on_output(OutputStream.ANSWER, word)
    assert "".join(text for _stream, text in pieces) == "".join(words)  # shown at once
    ctx.on_output(OutputStream.ANSWER, "SUPER")  # the start of the secret, in capitals
    assert pieces[-1][1] == " "
    ctx.on_output(OutputStream.ANSWER, "SECRET-TOKEN-42 the end")
    assert pieces[-1][1] == "*** the end"


def test_an_encoded_secret_cut_in_two_is_masked() -> None:
    secret = "p@ss/w0rd é!"
    pieces: list[Piece] = []
    ctx = context(pieces, {"TOKEN": secret})
    ctx.expansion("${TOKEN}")
    encoded = "p%40ss%2Fw0rd%20%C3%A9%21"
    ctx.on_output(OutputStream.STDOUT, "GET /?key=" + encoded[:11])
    ctx.on_output(OutputStream.STDOUT, encoded[11:] + " 200\n")
    ctx.end_output()
    assert "".join(text for _stream, text in pieces) == "GET /?key=*** 200\n"


# -------------------------------------------------------------------- agents


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_answer_streams_word_by_word(streamer: StreamServer, kind: str) -> None:
    pieces: list[Piece] = []
    outcome = ask(agent_of(streamer, kind), context(pieces))
    answer = "answer to: hello there world"
    assert outcome.status == "succeeded", outcome.error
    assert pieces == [(OutputStream.ANSWER, word) for word in words_of(answer)]
    assert outcome.output == answer  # the finished output is the same text as unstreamed
    assert outcome.details["model"] == "echo-served"
    assert outcome.details["finish_reason"] in ("stop", "end_turn")
    assert outcome.details["usage"] == {
        "prompt_tokens": USAGE_IN,
        "completion_tokens": USAGE_OUT,
        "total_tokens": USAGE_IN + USAGE_OUT,
    }
    assert streamer.requests[-1]["stream"] is True


def test_a_stream_without_usage_is_counted_by_estimate(streamer: StreamServer) -> None:
    """llama.cpp's Python server ignores stream_options.include_usage: the run's tokens are
    then estimated (about four characters a token), so a token budget still counts them."""
    pieces: list[Piece] = []
    outcome = ask(agent_of(streamer, "openai", "no-usage"), context(pieces))
    assert outcome.status == "succeeded", outcome.error
    assert len(pieces) > 1  # it did stream
    usage = outcome.details["usage"]
    assert outcome.details["usage_estimated"] is True
    assert usage["completion_tokens"] == -(-len("answer to: hello there world") // 4)
    assert usage["prompt_tokens"] >= 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_server_that_does_not_stream_gives_one_piece(streamer: StreamServer, kind: str) -> None:
    pieces: list[Piece] = []
    outcome = ask(agent_of(streamer, kind, "no-stream"), context(pieces))
    assert outcome.status == "succeeded", outcome.error
    assert pieces == [(OutputStream.ANSWER, "answer to: hello there world")]
    assert outcome.output == "answer to: hello there world"


def test_a_server_that_refuses_streaming_is_asked_again_for_the_whole_answer(
    streamer: StreamServer,
) -> None:
    pieces: list[Piece] = []
    outcome = ask(agent_of(streamer, "openai", "strict"), context(pieces))
    assert outcome.status == "succeeded", outcome.error
    assert pieces == [(OutputStream.ANSWER, "answer to: hello there world")]
    first, second = streamer.requests[-2:]
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert "stream" not in second and "stream_options" not in second


def test_the_usual_test_server_ignores_stream_and_still_answers() -> None:
    server: AgentServer = start_agent_server()
    try:
        pieces: list[Piece] = []
        agent = Agent("helper", "openai", {"url": server.openai_url, "model": "echo"})
        outcome = ask(agent, context(pieces), "hi")
        assert outcome.status == "succeeded" and outcome.output == "answer to: hi"
        assert pieces == [(OutputStream.ANSWER, "answer to: hi")]
        assert server.last("openai").body["stream"] is True
    finally:
        server.close()


def test_nobody_watching_asks_for_no_stream(streamer: StreamServer) -> None:
    outcome = ask(agent_of(streamer, "openai"), context(None))
    assert outcome.status == "succeeded" and outcome.output == "answer to: hello there world"
    assert "stream" not in streamer.requests[-1]


@pytest.mark.parametrize(
    ("kind", "message"), [("openai", "the model is overloaded"), ("anthropic", "Overloaded")]
)
def test_an_error_in_the_middle_fails_the_run_keeping_what_came(
    streamer: StreamServer, kind: str, message: str
) -> None:
    pieces: list[Piece] = []
    outcome = ask(agent_of(streamer, kind, "error-mid"), context(pieces))
    assert outcome.status == "failed"
    assert outcome.error == f"the server stopped: {message}"
    assert outcome.output == "answer to:"
    assert "".join(text for _stream, text in pieces) == "answer to:"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_stream_cut_short_is_a_malformed_response(streamer: StreamServer, kind: str) -> None:
    outcome = ask(agent_of(streamer, kind, "cut"), context([]))
    assert outcome.status == "failed"
    assert outcome.error == "malformed response: the stream ended before the answer did"
    assert outcome.output == "answer to:"


def test_each_word_is_passed_on_as_it_is_sent() -> None:
    seen: list[tuple[float, str]] = []
    ctx = context(None)
    ctx.on_piece = lambda stream, text: seen.append((time.time(), text))
    with StreamServer(delay=0.2) as server:
        outcome = ask(agent_of(server, "openai"), ctx, "one two three four")
        sent = list(server.sent)
    assert outcome.status == "succeeded"
    assert [text for _at, text in seen] == [word for _at, word in sent]
    lags = [got - went for (got, _), (went, _) in zip(seen, sent, strict=True)]
    assert max(lags) < 0.3, lags  # not held until the end: each within a moment


# -------------------------------------------------------------------- the writer


def test_the_writer_batches_pieces_caps_them_and_tells_one_event_per_flush(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "jobs.db")
    for _ in range(2):
        store.conn.execute(
            "INSERT INTO runs (trigger, status, scheduled_for, created_at) VALUES "
            "('manual', 'running', '2026-11-30T07:00:00Z', '2026-11-30T07:00:00Z')"
        )
    tapped: list[tuple[int, str]] = []
    writer = OutputWriter(store, tap=lambda run, stream, text: tapped.append((run, text)))
    first, second = writer.open(1, "a"), writer.open(2, None)
    first(OutputStream.STDOUT, "one\n")
    first(OutputStream.STDERR, "oops\n")
    second(OutputStream.ANSWER, "hi")
    assert store.output_after(1) == []  # nothing written before the flush
    writer.flush()
    assert [(p.seq, p.stream, p.text) for p in store.output_after(1)] == [
        (1, OutputStream.STDOUT, "one\n"),
        (2, OutputStream.STDERR, "oops\n"),
    ]
    events = store.events_after(0)
    assert [(e.type, e.job, e.run) for e in events] == [
        (EventType.RUN_OUTPUT, "a", 1),
        (EventType.RUN_OUTPUT, None, 2),
    ]
    assert events[0].data == {"bytes": 9, "text": "one\noops\n", "streams": ["stderr", "stdout"]}
    assert tapped == [(1, "one\n"), (1, "oops\n"), (2, "hi")]

    first(OutputStream.STDOUT, "x" * OUTPUT_CAP)  # past the cap: cut, marked, then no more
    first(OutputStream.STDOUT, "lost")
    writer.close(1)
    writer.flush()
    text = "".join(p.text for p in store.output_after(1))
    assert len(text.encode()) == OUTPUT_CAP + len(TRUNCATED)
    assert text.endswith(TRUNCATED) and "lost" not in text
    writer.flush()  # nothing waits: no transaction, no event
    assert len(store.events_after(0)) == 3


# -------------------------------------------------------------------- real processes

TICKER = (
    "import sys, time\n"
    "for i in range(8):\n"
    "    print(f'line {i} {time.time():.3f}', flush=True)\n"
    "    if i % 3 == 2: print(f'warn {i}', file=sys.stderr, flush=True)\n"
    "    time.sleep(0.2)\n"
)


def ticker_command(tmp_path: Path) -> str:
    script = tmp_path / "ticker.py"
    script.write_text(TICKER)
    return f"{sys.executable} -S {script}"


def pieces_of(db: Path, run_id: int) -> list[Any]:
    return query(
        db, "SELECT seq, stream, at, text FROM run_output WHERE run_id = ? ORDER BY seq", run_id
    )


def test_the_daemon_stores_pieces_while_the_run_is_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobs.db"
    db.parent.mkdir()
    add_job(db, "ticker", "--exec", ticker_command(tmp_path), "--manual")
    daemon = DaemonProcess(db).wait_ready()
    try:
        queued = run_jobctl(db, "run", "ticker", "--queue", "--json")
        assert queued.returncode == 0, queued.stderr
        run_id = int(queued.stdout.split('"run": ')[1].split("}")[0])
        # watch the database as a follower would: when does each piece become readable?
        seen: dict[int, float] = {}
        seen_while_running = 0
        deadline = time.monotonic() + 20
        while True:
            status = query(db, "SELECT status FROM runs WHERE id = ?", run_id)[0][0]
            for piece in pieces_of(db, run_id):
                seen.setdefault(piece["seq"], time.time())
            if status in ("queued", "running"):
                seen_while_running = len(seen)
            else:
                break
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.02)
    finally:
        daemon.stop()
    assert status == "succeeded"
    pieces = pieces_of(db, run_id)
    assert seen_while_running >= len(pieces) - 2  # stored while in flight, not at the end
    output = query(db, "SELECT output FROM runs WHERE id = ?", run_id)[0][0]
    assert "".join(p["text"] for p in pieces) == output
    assert {p["stream"] for p in pieces} == {"stdout", "stderr"}
    for piece in pieces:
        for line in piece["text"].splitlines():
            if line.startswith("line "):
                printed = float(line.split()[2])
                assert seen[piece["seq"]] - printed < 0.5, (line, seen[piece["seq"]])
    events = query(db, "SELECT data FROM events WHERE type = 'run.output' AND run = ?", run_id)
    assert 2 <= len(events) <= len(pieces)  # batched: not one per piece, not one at the end


def test_jobctl_run_prints_output_as_it_comes(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobs.db"
    db.parent.mkdir()
    add_job(db, "ticker", "--exec", ticker_command(tmp_path), "--manual")
    env = {**os.environ, "JOBCTL_DB": str(db)}
    process = subprocess.Popen(
        jobctl_command("run", "ticker"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("line 0 ")
        assert time.time() - float(first.split()[2]) < 0.5  # printed as it came, not at the end
        assert process.poll() is None  # the run goes on
        rest, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors
    output = query(db, "SELECT output FROM runs")[0][0]
    assert first + rest == output  # printed once, the same text as the run's output
    assert "attempt 1 · succeeded" in errors


def test_an_agent_job_streams_its_answer_into_the_run(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobs.db"
    db.parent.mkdir()
    with StreamServer(delay=0.05) as server:
        result = run_jobctl(
            db, "agent", "add", "llm", "--url", server.openai_url, "--model", "echo"
        )
        assert result.returncode == 0, result.stderr
        add_job(db, "ask", "--agent", "llm", "--prompt", "tell me a story", "--manual")
        result = run_jobctl(db, "run", "ask")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "answer to: tell me a story\n"
    run_id = query(db, "SELECT id FROM runs")[0][0]
    pieces = pieces_of(db, run_id)
    assert [p["text"] for p in pieces] == words_of("answer to: tell me a story")
    assert {p["stream"] for p in pieces} == {"answer"}


def test_a_run_is_finished_only_once_all_its_pieces_are_stored(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobs.db"
    db.parent.mkdir()
    add_job(db, "quick", "--exec", "echo one; echo two >&2; echo three", "--manual")
    daemon = DaemonProcess(db).wait_ready()
    try:
        queued = run_jobctl(db, "run", "quick", "--queue", "--json")
        assert queued.returncode == 0, queued.stderr
        run_id = int(queued.stdout.split('"run": ')[1].split("}")[0])
        # one statement reads one snapshot: the status and the pieces as they were together
        snapshot = (
            "SELECT status, output, (SELECT coalesce(group_concat(text, ''), '') FROM "
            "(SELECT text FROM run_output WHERE run_id = runs.id ORDER BY seq)) AS pieces "
            "FROM runs WHERE id = ?"
        )
        deadline = time.monotonic() + 20
        while True:
            row = query(db, snapshot, run_id)[0]
            if row["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.002)
    finally:
        daemon.stop()
    assert row["status"] == "succeeded"
    assert row["pieces"] == row["output"]
    assert sorted(row["output"].split()) == ["one", "three", "two"]


def test_jobctl_run_into_a_closed_pipe_still_finishes_the_run(tmp_path: Path) -> None:
    db = tmp_path / "data" / "jobs.db"
    db.parent.mkdir()
    add_job(
        db, "many", "--exec", "for i in $(seq 20); do echo line $i; sleep 0.02; done", "--manual"
    )
    command = " ".join(jobctl_command("run", "many")) + " | head -1"
    env = {**os.environ, "JOBCTL_DB": str(db)}
    result = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert result.stdout == "line 1\n"
    assert "Traceback" not in result.stderr and "attempt 1 · succeeded" in result.stderr
    assert query(db, "SELECT status FROM runs")[0][0] == "succeeded"
