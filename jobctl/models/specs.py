"""What a run does, by action kind: an HTTP request, a command, a prompt for an agent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, NotRequired, TypedDict

from jobctl.models.words import ActionKind


class HttpSpecDict(TypedDict):
    """An HTTP spec's stored and JSON form."""

    url: str
    method: str
    headers: dict[str, str]
    body: str | None
    expect: str
    forward_payload: NotRequired[bool]
    expect_body: NotRequired[str]
    expect_json: NotRequired[list[str]]
    expect_headers: NotRequired[list[str]]
    max_duration: NotRequired[str]
    max_redirects: NotRequired[int]
    timings: NotRequired[bool]


class ExecSpecDict(TypedDict):
    """An exec spec's stored and JSON form."""

    command: str
    cwd: str | None
    env: dict[str, str]
    shell: bool


class AgentSpecDict(TypedDict):
    """An agent spec's stored and JSON form (the model and budget keys only when set)."""

    agent: str
    prompt: str
    deliver: str | None
    team: NotRequired[str]
    model: NotRequired[str]
    max_tokens: NotRequired[int]
    budget_tokens: NotRequired[int]
    budget_per: NotRequired[str]


SpecDict = HttpSpecDict | ExecSpecDict | AgentSpecDict


def _text(value: object, default: str = "") -> str:
    return default if value is None else str(value)


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _text_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _text_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(str(item) for item in value)


def _optional_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


@dataclass(frozen=True)
class HttpSpec:
    """An HTTP request: `method` on `url` with `headers` and `body`; `expect` is the status
    codes that count as success; `forward_payload` sends a webhook's body on (None: never
    set, and so absent from the JSON form). The assertions beyond the status
    (`jobctl.http_checks`) and `max_redirects` (None: the default, 10) are in the JSON form
    only when set."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expect: str = "2xx"
    forward_payload: bool | None = None
    expect_body: str | None = None
    expect_json: tuple[str, ...] = ()
    expect_headers: tuple[str, ...] = ()
    max_duration: str | None = None
    max_redirects: int | None = None
    timings: bool | None = None  # each phase's time (costs CPU); None: never set

    kind: ClassVar[ActionKind] = ActionKind.HTTP

    def to_dict(self) -> HttpSpecDict:
        """The stored and JSON form, keys in the order every output writes them."""
        data: HttpSpecDict = {
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "body": self.body,
            "expect": self.expect,
        }
        if self.forward_payload is not None:
            data["forward_payload"] = self.forward_payload
        if self.expect_body is not None:
            data["expect_body"] = self.expect_body
        if self.expect_json:
            data["expect_json"] = list(self.expect_json)
        if self.expect_headers:
            data["expect_headers"] = list(self.expect_headers)
        if self.max_duration is not None:
            data["max_duration"] = self.max_duration
        if self.max_redirects is not None:
            data["max_redirects"] = self.max_redirects
        if self.timings is not None:
            data["timings"] = self.timings
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> HttpSpec:
        body = _optional_text(data.get("body"))
        forward = data.get("forward_payload")
        return cls(
            url=_text(data.get("url")),
            method=_text(data.get("method")) or ("POST" if body is not None else "GET"),
            headers=_text_map(data.get("headers")),
            body=body,
            expect=_text(data.get("expect")) or "2xx",
            forward_payload=None if forward is None else bool(forward),
            expect_body=_optional_text(data.get("expect_body")),
            expect_json=_text_list(data.get("expect_json")),
            expect_headers=_text_list(data.get("expect_headers")),
            max_duration=_optional_text(data.get("max_duration")),
            max_redirects=_optional_int(data.get("max_redirects")),
            timings=None if data.get("timings") is None else bool(data.get("timings")),
        )


@dataclass(frozen=True)
class ExecSpec:
    """A command: an argv line, or a /bin/sh line when `shell`; run in `cwd` with `env`
    laid over the daemon's environment."""

    command: str
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    shell: bool = False

    kind: ClassVar[ActionKind] = ActionKind.EXEC

    def to_dict(self) -> ExecSpecDict:
        """The stored and JSON form, keys in the order every output writes them."""
        return {
            "command": self.command,
            "cwd": self.cwd,
            "env": dict(self.env),
            "shell": self.shell,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ExecSpec:
        return cls(
            command=_text(data.get("command")),
            cwd=_optional_text(data.get("cwd")) or None,
            env=_text_map(data.get("env")),
            shell=bool(data.get("shell")),
        )


def _optional_count(value: object) -> int | None:
    return None if value is None or not isinstance(value, str | int | float) else int(value)


@dataclass(frozen=True)
class AgentSpec:
    """A prompt for a named agent, or for a team (then `agent` is ''); the answer is posted
    to `deliver` when that is set.

    `model` and `max_tokens` override the agent's for this job's calls; `budget_tokens`
    caps the tokens the job's runs use per `budget_per` (day, week or month).
    """

    agent: str
    prompt: str
    deliver: str | None = None
    team: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    budget_tokens: int | None = None
    budget_per: str | None = None

    kind: ClassVar[ActionKind] = ActionKind.AGENT

    def to_dict(self) -> AgentSpecDict:
        """The stored and JSON form, keys in the order every output writes them (`team`
        only for a team's job)."""
        data: AgentSpecDict = {"agent": self.agent, "prompt": self.prompt, "deliver": self.deliver}
        if self.team:
            data["team"] = self.team
        if self.model is not None:
            data["model"] = self.model
        if self.max_tokens is not None:
            data["max_tokens"] = self.max_tokens
        if self.budget_tokens is not None:
            data["budget_tokens"] = self.budget_tokens
        if self.budget_per is not None:
            data["budget_per"] = self.budget_per
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AgentSpec:
        return cls(
            agent=_text(data.get("agent")),
            prompt=_text(data.get("prompt")),
            deliver=_optional_text(data.get("deliver")) or None,
            team=_optional_text(data.get("team")) or None,
            model=_optional_text(data.get("model")) or None,
            max_tokens=_optional_count(data.get("max_tokens")),
            budget_tokens=_optional_count(data.get("budget_tokens")),
            budget_per=_optional_text(data.get("budget_per")) or None,
        )


Spec = HttpSpec | ExecSpec | AgentSpec
SPEC_TYPES: dict[str, type[HttpSpec] | type[ExecSpec] | type[AgentSpec]] = {
    ActionKind.HTTP: HttpSpec,
    ActionKind.EXEC: ExecSpec,
    ActionKind.AGENT: AgentSpec,
}


def spec_from_dict(action: str, data: Mapping[str, object]) -> Spec:
    """The typed spec of an `action` job from its stored or JSON form."""
    try:
        spec_type = SPEC_TYPES[action]
    except KeyError:
        raise ValueError(f"unknown action kind {action!r}") from None
    return spec_type.from_dict(data)
