"""The typed job models: their stored/JSON form reads back to the same object."""

from __future__ import annotations

from typing import Any

import pytest

from jobctl.models import (
    ActionKind,
    AgentSpec,
    ExecSpec,
    HttpSpec,
    Overlap,
    Policies,
    spec_from_dict,
)


@pytest.mark.parametrize(
    ("action", "data"),
    [
        (
            "http",
            {
                "url": "https://h/x",
                "method": "POST",
                "headers": {"A": "b"},
                "body": "{}",
                "expect": "200",
                "forward_payload": True,
            },
        ),
        (
            "http",
            {"url": "https://h/", "method": "GET", "headers": {}, "body": None, "expect": "2xx"},
        ),
        ("exec", {"command": "make", "cwd": "/tmp", "env": {"A": "1"}, "shell": True}),
        ("agent", {"agent": "a", "prompt": "hi", "deliver": None}),
    ],
)
def test_spec_round_trips_in_key_order(action: str, data: dict[str, Any]) -> None:
    spec = spec_from_dict(action, data)
    assert spec.kind == action
    assert list(spec.to_dict().items()) == list(data.items())
    assert type(spec).from_dict(spec.to_dict()) == spec


def test_spec_types() -> None:
    assert isinstance(spec_from_dict("http", {"url": "u"}), HttpSpec)
    assert isinstance(spec_from_dict("exec", {"command": "c"}), ExecSpec)
    assert isinstance(spec_from_dict("agent", {"agent": "a", "prompt": "p"}), AgentSpec)
    with pytest.raises(ValueError, match="unknown action kind"):
        spec_from_dict("ftp", {})


def test_policies_store_only_what_was_set() -> None:
    stored = {"retries": 3, "overlap": "queue", "notify": [{"on": "failure", "url": "https://n/"}]}
    policies = Policies.from_dict(stored)
    assert policies.overlap is Overlap.QUEUE
    assert policies.to_dict() == stored
    assert Policies().to_dict() == {}


def test_effective_policies_defaults_and_agent_timeout() -> None:
    assert Policies().effective(ActionKind.HTTP).timeout == 30.0
    assert Policies().effective(ActionKind.AGENT, agent_timeout=5).timeout == 5.0
    assert Policies(timeout=7.0).effective(ActionKind.AGENT, agent_timeout=5).timeout == 7.0
    assert Policies(timeout=7.0).effective(ActionKind.EXEC).timeout == 7.0
    assert Policies(max_failures=0).effective(ActionKind.EXEC).max_failures is None
    effective = Policies().effective(ActionKind.EXEC).to_dict()
    assert list(effective) == [
        "timeout",
        "retries",
        "backoff",
        "overlap",
        "catchup",
        "catchup_window",
        "jitter",
        "max_failures",
        "keep",
        "keep_for",
        "alert_if_no_success",
        "notify",
    ]


def test_notify_targets_by_outcome() -> None:
    policies = Policies.from_dict(
        {
            "notify": [
                {"on": "failure", "url": "f"},
                {"on": "success", "url": "s"},
                {"on": "always", "url": "a"},
            ]
        }
    )
    assert policies.notify_targets("timed_out") == ["f", "a"]
    assert policies.notify_targets("succeeded") == ["s", "a"]
