"""Agents: the `jobctl agent` commands, and AgentFirer against real local agent endpoints."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobctl.actions import FireContext, Outcome
from jobctl.actions.agent import AgentFirer
from jobctl.agent_changes import build_agent
from jobctl.agents import run_timeout
from jobctl.errors import InvalidInput
from jobctl.models import Agent, AgentChange
from tests.agent_servers import AgentServer, fake_agent_command, start_agent_server
from tests.conftest import BOTH_STORES, Invoke, create_database, dump_database

KEY = "sk-test-Zq81kd0-very-secret"  # an API key: must never be stored or shown
KEY_ENV = "JOBCTL_TEST_AGENT_KEY"
SLOT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[AgentServer]:
    running = start_agent_server()
    yield running
    running.close()


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("JOBCTL_ENV_FILE", raising=False)


def context(timeout: float = 5.0, env: Mapping[str, str] | None = None) -> FireContext:
    return FireContext(
        job="digest",
        run_id=7,
        scheduled_for=SLOT,
        attempt=1,
        timeout=timeout,
        env={KEY_ENV: KEY, **(env or {})},
    )


def ask(
    agent: Agent,
    prompt: str = "hello",
    *,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    async def scenario() -> Outcome:
        async with AgentFirer(kill_grace=0.5) as firer:
            return await firer.ask(agent, prompt, context(timeout, env))

    return asyncio.run(scenario())


def http_agent(server: AgentServer, kind: str, model: str = "echo", **config: Any) -> Agent:
    url = server.openai_url if kind == "openai" else server.anthropic_url
    return Agent("helper", kind, {"url": url, "model": model, "api_key_env": KEY_ENV, **config})


def command_agent(*args: str) -> Agent:
    return Agent("local", "command", {"command": fake_agent_command(*args)})


def everything_stored(outcome: Outcome) -> str:
    """What the engine would store from an outcome, to check that no secret is in it."""
    return repr((outcome.snapshot, outcome.details, outcome.error, outcome.output))


# ------------------------------------------------------------------------- CLI: editing


@BOTH_STORES
def test_add_show_list_an_openai_agent(jobctl: Invoke, db_path: Path) -> None:
    result = jobctl(
        "agent",
        "add",
        "gpt",
        "--url",
        "https://api.example.com/v1/",
        "--model",
        "gpt-4o-mini",
        "--api-key-env",
        KEY_ENV,
        "--system",
        "Be brief.",
        "--temperature",
        "0.2",
        "--max-tokens",
        "300",
        "--timeout",
        "2m",
        "--header",
        "OpenAI-Organization: org-1",
        "--header",
        "X-Team-Token: literal-token",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "added openai agent 'gpt': gpt-4o-mini at https://api.example.com/v1\n"

    shown = json.loads(jobctl("agent", "show", "gpt", "--json").stdout)
    assert shown == shown | {
        "name": "gpt",
        "kind": "openai",
        "url": "https://api.example.com/v1",
        "model": "gpt-4o-mini",
        "api_key_env": KEY_ENV,
        "system": "Be brief.",
        "temperature": 0.2,
        "max_tokens": 300,
        "timeout": 120.0,
        "command": None,
        "jobs": [],
        "headers": {"OpenAI-Organization": "org-1", "X-Team-Token": "***"},
    }
    assert shown["created_at"].endswith("Z")

    text = jobctl("agent", "show", "gpt").stdout
    assert "api key env:" in text and KEY_ENV in text
    assert "literal-token" not in text and "timeout:     2m" in text

    listed = jobctl("agent", "list")
    assert listed.exit_code == 0
    assert listed.stdout.split("\n")[0].split() == ["NAME", "KIND", "MODEL", "TARGET", "JOBS"]
    assert "gpt-4o-mini" in listed.stdout
    assert [item["name"] for item in json.loads(jobctl("agent", "list", "--json").stdout)] == [
        "gpt"
    ]


@BOTH_STORES
def test_anthropic_gets_its_default_url_and_command_agents_keep_their_command(
    jobctl: Invoke,
) -> None:
    assert (
        jobctl(
            "agent",
            "add",
            "claude",
            "--kind",
            "anthropic",
            "--model",
            "claude-x",
            "--api-key-env",
            "${ANTHROPIC_API_KEY}",
        ).exit_code
        == 0
    )
    claude = json.loads(jobctl("agent", "show", "claude", "--json").stdout)
    assert claude["url"] == "https://api.anthropic.com/v1"
    assert claude["api_key_env"] == "ANTHROPIC_API_KEY"

    assert jobctl("agent", "add", "coder", "--command", "my-agent --print {prompt}").exit_code == 0
    coder = json.loads(jobctl("agent", "show", "coder", "--json").stdout)
    assert (
        coder
        | {"kind": "command", "command": "my-agent --print {prompt}", "url": None, "model": None}
        == coder
    )
    assert "command:" in jobctl("agent", "show", "coder").stdout


def test_empty_listing(jobctl: Invoke, db_path: Path) -> None:
    create_database(db_path)
    assert jobctl("agent", "list", "--json").stdout.strip() == "[]"
    result = jobctl("agent", "list")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no agents yet" in result.stderr


@BOTH_STORES
def test_edit_replaces_given_fields_and_clears_with_empty(jobctl: Invoke) -> None:
    jobctl(
        "agent",
        "add",
        "gpt",
        "--url",
        "http://localhost:11434/v1",
        "--model",
        "llama3",
        "--system",
        "Be brief.",
        "--header",
        "X-A: 1",
        "--header",
        "X-B: 2",
    )
    result = jobctl(
        "agent", "edit", "gpt", "--model", "qwen2.5", "--system", "", "--header", "X-C: 3", "--json"
    )
    assert result.exit_code == 0, result.stderr
    edited = json.loads(result.stdout)
    assert edited["model"] == "qwen2.5"
    assert edited["system"] is None
    assert edited["headers"] == {"X-C": "3"}
    assert edited["url"] == "http://localhost:11434/v1"  # not given: unchanged

    # the kind may change; fields of the old kind do not linger
    assert jobctl("agent", "edit", "gpt", "--command", "my-agent").exit_code == 0
    changed = json.loads(jobctl("agent", "show", "gpt", "--json").stdout)
    assert changed["kind"] == "command" and changed["url"] is None and changed["model"] is None
    back = jobctl("agent", "edit", "gpt", "--kind", "anthropic", "--model", "claude-x")
    assert back.exit_code == 0, back.stderr
    assert json.loads(jobctl("agent", "show", "gpt", "--json").stdout)["command"] is None


def test_system_prompt_from_a_file(jobctl: Invoke, tmp_path: Path) -> None:
    system = tmp_path / "system.txt"
    system.write_text("You summarise logs.\nBe terse.\n")
    jobctl(
        "agent",
        "add",
        "gpt",
        "--url",
        "http://localhost:1/v1",
        "--model",
        "m",
        "--system",
        f"@{system}",
    )
    shown = json.loads(jobctl("agent", "show", "gpt", "--json").stdout)
    assert shown["system"] == "You summarise logs.\nBe terse.\n"


@BOTH_STORES
def test_rm_is_refused_while_a_job_uses_the_agent(jobctl: Invoke, db_path: Path) -> None:
    jobctl("agent", "add", "gpt", "--url", "http://localhost:1/v1", "--model", "m")
    job = jobctl("add", "digest", "--agent", "gpt", "--prompt", "hi", "--manual")
    assert job.exit_code == 0, job.stderr
    before = dump_database(db_path)

    refused = jobctl("agent", "rm", "gpt")
    assert refused.exit_code == 1
    assert "digest" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert dump_database(db_path) == before

    forced = jobctl("agent", "rm", "gpt", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert forced.stdout == "removed agent 'gpt'\n"
    assert "paused job 'digest'" in forced.stderr
    assert jobctl("agent", "show", "gpt").exit_code == 3
    shown = json.loads(jobctl("show", "digest", "--json").stdout)
    assert shown["state"] == "paused"
    assert shown["paused_reason"] == "agent gpt was removed"


@BOTH_STORES
def test_rm_changes_nothing_when_a_name_is_unknown(jobctl: Invoke, db_path: Path) -> None:
    jobctl("agent", "add", "gpt", "--url", "http://localhost:1/v1", "--model", "m")
    jobctl("agent", "add", "other", "--command", "x")
    before = dump_database(db_path)
    result = jobctl("agent", "rm", "gpt", "nope")
    assert result.exit_code == 3
    assert "no agent named 'nope'" in result.stderr
    assert dump_database(db_path) == before
    assert jobctl("agent", "rm", "gpt", "other").exit_code == 0
    assert jobctl("agent", "list", "--json").stdout.strip() == "[]"


def test_unknown_agent_suggests_a_close_name(jobctl: Invoke) -> None:
    jobctl("agent", "add", "claude", "--kind", "anthropic", "--model", "m")
    result = jobctl("agent", "show", "cluade")
    assert result.exit_code == 3
    assert result.stderr == "jobctl: no agent named 'cluade': did you mean 'claude'?\n"
    assert jobctl("agent", "test", "nope", "hi").exit_code == 3
    assert jobctl("agent", "edit", "nope", "--model", "x").exit_code == 3


BASE = ("--url", "http://localhost:11434/v1", "--model", "m")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("add", "Bad Name", *BASE), 2, "invalid agent name 'Bad Name'"),
        (("add", "a", "--model", "m"), 2, "an openai agent needs --url"),
        (("add", "a", "--url", "http://localhost:1/v1"), 2, "needs --model"),
        (("add", "a", "--url", "ftp://example.com/v1", "--model", "m"), 2, "http:// or https://"),
        (
            ("add", "a", "--url", "http://h/v1/chat/completions", "--model", "m"),
            2,
            "give the base URL (http://h/v1)",
        ),
        (
            ("add", "a", "--kind", "anthropic", "--url", "https://h/v1/messages", "--model", "m"),
            2,
            "jobctl adds /messages",
        ),
        (("add", "a", *BASE, "--api-key-env", KEY), 2, "never the key itself"),
        (("add", "a", *BASE, "--api-key-env", "openai_key"), 2, "invalid --api-key-env"),
        (("add", "a", *BASE, "--temperature", "3"), 2, "from 0 to 2"),
        (("add", "a", *BASE, "--temperature", "warm"), 2, "invalid --temperature"),
        (
            ("add", "a", "--kind", "anthropic", "--model", "m", "--temperature", "1.5"),
            2,
            "from 0 to 1 for an anthropic agent",
        ),
        (("add", "a", *BASE, "--max-tokens", "0"), 2, "invalid --max-tokens '0'"),
        (("add", "a", *BASE, "--max-tokens", "many"), 2, "invalid --max-tokens"),
        (("add", "a", *BASE, "--header", "no colon"), 2, "invalid --header"),
        (("add", "a", *BASE, "--timeout", "soon"), 2, "invalid --timeout"),
        (("add", "a", "--kind", "fast", "--model", "m"), 2, "Invalid value for '--kind'"),
        (
            ("add", "a", "--command", "x", "--url", "http://h/v1"),
            2,
            "--command and --url cannot be combined",
        ),
        (("add", "a", "--command", "x", "--kind", "openai"), 2, "cannot be combined"),
        (("add", "a", "--command", ""), 2, "invalid --command ''"),
        (("add", "a", "--command", "'unclosed"), 2, "No closing quotation"),
        (("add", "taken", *BASE), 2, "already exists"),
        (("edit", "taken"), 2, "nothing to change"),
        (("edit", "cmd", "--url", "http://h/v1"), 2, "'cmd' is a command agent"),
        (("edit", "taken", "--kind", "anthropic", "--temperature", "1.5"), 2, "from 0 to 1"),
        (("edit", "nope", "--model", "m"), 3, "no agent named 'nope'"),
        (("show", "nope"), 3, "no agent named 'nope'"),
        (("rm", "nope"), 3, "no agent named 'nope'"),
    ],
)
def test_bad_input_changes_nothing(
    jobctl: Invoke, db_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    jobctl("agent", "add", "taken", *BASE)
    jobctl("agent", "add", "cmd", "--command", "my-agent")
    before = dump_database(db_path)
    result = jobctl("agent", *args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert KEY not in result.stderr  # a key given by mistake is never echoed
    assert dump_database(db_path) == before


def test_the_api_key_is_never_stored_nor_shown(
    jobctl: Invoke, db_path: Path, server: AgentServer, with_key: None
) -> None:
    jobctl(
        "agent",
        "add",
        "gpt",
        "--url",
        server.openai_url,
        "--model",
        "error-401-echo",
        "--api-key-env",
        KEY_ENV,
    )
    outputs = [
        jobctl("agent", "show", "gpt"),
        jobctl("agent", "show", "gpt", "--json"),
        jobctl("agent", "list", "--json"),
        jobctl("agent", "test", "gpt", "hi"),
        jobctl("agent", "test", "gpt", "hi", "--json"),
    ]
    assert server.last("openai").headers["authorization"] == f"Bearer {KEY}"
    for result in outputs:
        assert KEY not in result.stdout + result.stderr
    assert "invalid api key ***" in outputs[3].stderr  # the server echoed it; we did not
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    stored = b"".join(path.read_bytes() for path in db_path.parent.iterdir() if path.is_file())
    assert KEY.encode() not in stored
    assert KEY_ENV.encode() in stored  # only its name


# --------------------------------------------------------------------------- CLI: test


def test_agent_test_openai_prints_the_answer_and_usage(
    jobctl: Invoke, server: AgentServer, with_key: None
) -> None:
    jobctl(
        "agent",
        "add",
        "gpt",
        "--url",
        server.openai_url,
        "--model",
        "echo",
        "--api-key-env",
        KEY_ENV,
        "--system",
        "Be brief.",
        "--temperature",
        "0.5",
        "--max-tokens",
        "50",
    )
    result = jobctl("agent", "test", "gpt", "What is 2+2?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "answer to: What is 2+2?\n"
    assert "model echo-served" in result.stderr
    assert "finish stop" in result.stderr
    assert "tokens 11 in + 7 out = 18" in result.stderr
    assert " ms" in result.stderr

    sent = server.last("openai")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "model": "echo",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "temperature": 0.5,
        "max_tokens": 50,
    }

    as_json = json.loads(jobctl("agent", "test", "gpt", "hi", "--json").stdout)
    assert as_json["answer"] == "answer to: hi"
    assert as_json["status"] == "succeeded" and as_json["error"] is None
    assert as_json["model"] == "echo-served" and as_json["finish_reason"] == "stop"
    assert as_json["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert isinstance(as_json["latency_ms"], int)


def test_agent_test_anthropic(jobctl: Invoke, server: AgentServer, with_key: None) -> None:
    jobctl(
        "agent",
        "add",
        "claude",
        "--kind",
        "anthropic",
        "--url",
        server.anthropic_url,
        "--model",
        "echo",
        "--api-key-env",
        KEY_ENV,
        "--system",
        "Be brief.",
    )
    result = jobctl("agent", "test", "claude", "hello")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "answer to: hello\n"
    assert "tokens 13 in + 5 out = 18" in result.stderr and "finish end_turn" in result.stderr
    sent = server.last("anthropic")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "echo",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello"}],
    }


def test_agent_test_command_agent(jobctl: Invoke) -> None:
    jobctl("agent", "add", "local", "--command", fake_agent_command())
    result = jobctl("agent", "test", "local", "summarise this")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "answer to: summarise this\n"
    assert result.stderr.startswith("command agent · exit 0 · ")


def test_agent_test_failures_exit_1_with_the_reason(
    jobctl: Invoke, server: AgentServer, with_key: None
) -> None:
    jobctl(
        "agent",
        "add",
        "broken",
        "--url",
        server.openai_url,
        "--model",
        "error-500",
        "--api-key-env",
        KEY_ENV,
    )
    result = jobctl("agent", "test", "broken", "hi")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "jobctl: agent 'broken': HTTP 500 Internal Server Error: internal trouble\n"
    )
    as_json = json.loads(jobctl("agent", "test", "broken", "hi", "--json").stdout)
    assert as_json["status"] == "failed" and as_json["answer"] is None
    assert "HTTP 500" in as_json["error"]

    jobctl("agent", "add", "slow", "--url", server.openai_url, "--model", "slow")
    timed_out = jobctl("agent", "test", "slow", "hi", "--timeout", "1s")
    assert timed_out.exit_code == 1
    assert timed_out.stderr == "jobctl: agent 'slow': timed out after 1s\n"


def test_agent_test_without_the_key_sends_nothing(
    jobctl: Invoke, server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("JOBCTL_ENV_FILE", raising=False)
    jobctl(
        "agent",
        "add",
        "gpt",
        "--url",
        server.openai_url,
        "--model",
        "echo",
        "--api-key-env",
        KEY_ENV,
    )
    sent = server.count()
    result = jobctl("agent", "test", "gpt", "hi")
    assert result.exit_code == 1
    assert f"the environment variable {KEY_ENV} (its --api-key-env) is not set" in result.stderr
    assert result.stderr.startswith("jobctl: agent 'gpt': the environment variable")
    assert result.stderr.count("agent 'gpt'") == 1  # named once, not "agent 'gpt': agent 'gpt':"
    assert server.count() == sent


def test_agent_test_reads_the_env_file(
    jobctl: Invoke, server: AgentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "secrets.env"
    env_file.write_text(f"{KEY_ENV}={KEY}\nTOPIC=the weather\n")
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("JOBCTL_ENV_FILE", str(env_file))
    jobctl(
        "agent",
        "add",
        "gpt",
        "--url",
        server.openai_url,
        "--model",
        "echo",
        "--api-key-env",
        KEY_ENV,
    )
    result = jobctl("agent", "test", "gpt", "tell me about ${TOPIC}")
    assert result.exit_code == 0, result.stderr
    assert server.last("openai").headers["authorization"] == f"Bearer {KEY}"
    assert server.last("openai").body["messages"][-1]["content"] == "tell me about the weather"
    assert result.stdout == "answer to: tell me about ***\n"


# ------------------------------------------------------------------ AgentFirer: HTTP kinds


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_answer_succeeds_with_details_and_a_redacted_snapshot(
    server: AgentServer, kind: str
) -> None:
    agent = http_agent(
        server,
        kind,
        system="Be brief about ${TOPIC}.",
        headers={"X-Tenant": "${TENANT}", "X-Plain": "plain"},
    )
    outcome = ask(agent, "status of ${TOPIC}?", env={"TOPIC": "db-7", "TENANT": "tenant-42"})
    assert outcome.status == "succeeded", outcome.error
    assert outcome.http_status == 200 and outcome.exit_code is None
    assert outcome.output == "answer to: status of ***?"
    assert outcome.details == {
        "agent": "helper",
        "kind": kind,
        "model": "echo-served",
        "finish_reason": "stop" if kind == "openai" else "end_turn",
        "usage": (
            {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
            if kind == "openai"
            else {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18}
        ),
        "latency_ms": outcome.details["latency_ms"],
    }
    snapshot = outcome.snapshot
    assert snapshot is not None
    assert snapshot["prompt"] == "status of ***?"
    assert snapshot["system"] == "Be brief about ***."
    assert snapshot["model"] == "echo" and snapshot["agent"] == "helper"
    assert snapshot["url"].endswith("/chat/completions" if kind == "openai" else "/messages")
    headers = snapshot["headers"]
    assert headers["X-Tenant"] == "***" and headers["X-Plain"] == "plain"
    assert headers.get("Authorization", headers.get("x-api-key")) == "***"
    assert headers["X-Jobctl-Job"] == "digest" and headers["X-Jobctl-Run"] == "7"
    for secret in (KEY, "db-7", "tenant-42"):
        assert secret not in everything_stored(outcome)
    sent = server.last(kind)
    assert sent.headers["x-tenant"] == "tenant-42"
    assert sent.headers["x-jobctl-scheduled-for"] == "2026-01-02T03:04:05Z"
    assert sent.body["messages"][-1]["content"] == "status of db-7?"


@pytest.mark.parametrize(
    ("kind", "model", "status", "error"),
    [
        ("openai", "error-500", "failed", "HTTP 500 Internal Server Error: internal trouble"),
        ("anthropic", "error-500", "failed", "HTTP 500 Internal Server Error: internal trouble"),
        ("openai", "error-429", "failed", "HTTP 429 Too Many Requests: rate limited, slow down"),
        ("anthropic", "error-429", "failed", "HTTP 429 Too Many Requests: rate limited"),
        ("openai", "error-401-echo", "failed", "HTTP 401 Unauthorized: invalid api key ***"),
        ("anthropic", "error-401-echo", "failed", "HTTP 401 Unauthorized: invalid api key ***"),
        ("openai", "empty", "failed", "empty answer (finish reason stop)"),
        ("anthropic", "empty", "failed", "empty answer (finish reason end_turn)"),
        ("openai", "refuse", "failed", "refused: the provider's content filter"),
        ("openai", "refusal-field", "failed", "refused: I can't help with that."),
        ("anthropic", "refuse", "failed", "refused: the model declined to answer"),
        ("openai", "malformed", "failed", "malformed response: not JSON"),
        ("anthropic", "malformed", "failed", "malformed response: not JSON"),
        ("openai", "no-choices", "failed", "malformed response: no choices"),
        ("anthropic", "no-choices", "failed", "malformed response: no content"),
        ("openai", "slow", "timed_out", "timed out after 300ms"),
        ("anthropic", "slow", "timed_out", "timed out after 300ms"),
    ],
)
def test_dishonest_answers_never_succeed(
    server: AgentServer, kind: str, model: str, status: str, error: str
) -> None:
    outcome = ask(http_agent(server, kind, model), timeout=0.3)
    assert outcome.status == status
    assert outcome.error is not None and outcome.error.startswith(error), outcome.error
    assert "\n" not in outcome.error
    assert KEY not in everything_stored(outcome)
    assert outcome.details["agent"] == "helper"
    assert outcome.details["latency_ms"] is not None


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_answer_cut_at_the_token_limit_succeeds_with_a_note(
    server: AgentServer, kind: str
) -> None:
    outcome = ask(http_agent(server, kind, "length", max_tokens=5))
    assert outcome.status == "succeeded"
    assert outcome.output == "a partial ans"
    assert outcome.details["truncated"] is True
    assert "token limit" in outcome.details["note"]
    sent = server.last(kind)
    assert sent.body["max_tokens"] == 5


def test_openai_content_parts_are_joined(server: AgentServer) -> None:
    outcome = ask(http_agent(server, "openai", "parts"))
    assert outcome.status == "succeeded" and outcome.output == "part one, part two"


def test_without_api_key_env_no_credentials_are_sent(server: AgentServer) -> None:
    agent = Agent("helper", "openai", {"url": server.openai_url, "model": "echo"})
    assert ask(agent).ok
    assert "authorization" not in server.last("openai").headers


def test_configured_credentials_headers(server: AgentServer) -> None:
    # without api_key_env, a configured header can carry the credentials
    agent = Agent(
        "helper",
        "openai",
        {
            "url": server.openai_url,
            "model": "echo",
            "headers": {"authorization": "Bearer ${OTHER}"},
        },
    )
    outcome = ask(agent, env={"OTHER": "other-token-1"})
    assert server.last("openai").headers["authorization"] == "Bearer other-token-1"
    assert outcome.snapshot is not None
    assert outcome.snapshot["headers"]["authorization"] == "***"
    # with it, the key wins, once, whatever the case of the configured name
    both = http_agent(server, "openai", headers={"authorization": "Bearer ${OTHER}"})
    assert ask(both, env={"OTHER": "other-token-1"}).ok
    sent = server.last("openai").headers
    assert sent["authorization"] == f"Bearer {KEY}"


def test_failures_before_sending_send_nothing(server: AgentServer) -> None:
    sent = server.count()
    missing_key = http_agent(server, "openai", api_key_env="JOBCTL_TEST_UNSET_KEY")
    outcome = ask(missing_key)
    assert outcome.status == "failed"
    assert outcome.error is not None and "JOBCTL_TEST_UNSET_KEY" in outcome.error
    undefined = ask(http_agent(server, "anthropic"), "about ${NOWHERE}")
    assert undefined.status == "failed"
    assert undefined.error is not None and "${NOWHERE}" in undefined.error
    assert undefined.snapshot is not None and undefined.snapshot["prompt"] == "about ${NOWHERE}"
    assert server.count() == sent


def test_connection_refused_is_a_failed_run() -> None:
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = Agent("helper", "openai", {"url": f"http://127.0.0.1:{port}/v1", "model": "m"})
    outcome = ask(agent)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith("cannot connect to 127.0.0.1")


def test_one_session_serves_many_asks(server: AgentServer) -> None:
    async def scenario() -> list[Outcome]:
        async with AgentFirer() as firer:
            agent = http_agent(server, "openai")
            return await asyncio.gather(*(firer.ask(agent, f"q{n}", context()) for n in range(20)))

    outcomes = asyncio.run(scenario())
    assert [o.output for o in outcomes] == [f"answer to: q{n}" for n in range(20)]


# -------------------------------------------------------------- AgentFirer: command kind


def test_command_agent_reads_the_prompt_on_stdin() -> None:
    outcome = ask(
        command_agent(), "line one\nline 'two' with ${TOPIC}", env={"TOPIC": "hidden-topic"}
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.exit_code == 0 and outcome.http_status is None
    assert outcome.output == "answer to: line one\nline 'two' with ***\n"
    assert outcome.details["stderr"] == "thinking\n"
    assert outcome.snapshot is not None
    assert outcome.snapshot["prompt_via"] == "stdin"
    assert "hidden-topic" not in everything_stored(outcome)


def test_command_agent_gets_the_prompt_as_one_argument() -> None:
    prompt = "a prompt with  spaces, 'quotes' and \"more\" $HOME"
    outcome = ask(command_agent("{prompt}"), prompt)
    assert outcome.status == "succeeded", (outcome.error, outcome.details)
    assert outcome.output == f"answer to: {prompt}\n"
    assert outcome.snapshot is not None and outcome.snapshot["prompt_via"] == "argument"


def test_command_agent_sees_which_agent_and_job_it_serves() -> None:
    outcome = ask(command_agent("--show-env", "JOBCTL_JOB"))
    assert outcome.output == "digest\n"
    assert ask(command_agent("--show-env", "JOBCTL_AGENT")).output == "local\n"


def test_command_agent_failing_exit_code() -> None:
    outcome = ask(command_agent("--exit", "3"))
    assert outcome.status == "failed"
    assert outcome.exit_code == 3
    assert outcome.error == "exit code 3: thinking | fake agent: the model is unavailable"
    assert "the model is unavailable" in outcome.details["stderr"]


def test_command_agent_empty_answer_fails() -> None:
    outcome = ask(command_agent("--empty"))
    assert outcome.status == "failed" and outcome.error == "empty answer"


def test_command_agent_timeout_kills_the_group() -> None:
    outcome = ask(command_agent("--sleep", "30"), timeout=0.5)
    assert outcome.status == "timed_out"
    assert outcome.error == "timed out after 500ms; process group killed"
    assert outcome.duration_ms < 5000


def test_command_agent_that_never_reads_a_long_prompt() -> None:
    outcome = ask(command_agent("--ignore-stdin"), "x" * 1_000_000)
    assert outcome.status == "succeeded", outcome.error


def test_command_agent_that_cannot_start() -> None:
    outcome = ask(Agent("gone", "command", {"command": "/nonexistent/agent --quiet"}))
    assert outcome.status == "failed"
    assert outcome.error == "cannot start '/nonexistent/agent': No such file or directory"


# ------------------------------------------------------------------- core: validation


def test_build_agent_rejects_a_key_without_echoing_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        build_agent(AgentChange(name="a", url="http://h/v1", model="m", api_key_env=KEY))
    assert KEY not in str(caught.value)


def test_run_timeout_prefers_the_job_then_the_agent() -> None:
    agent = build_agent(AgentChange(name="a", command="x", timeout="2m"))
    assert run_timeout(agent) == 120.0
    assert run_timeout(agent, {"timeout": 30.0}) == 30.0
    assert run_timeout(build_agent(AgentChange(name="b", command="x"))) == 600.0
