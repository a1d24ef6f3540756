"""Validating an AgentChange into an Agent: the one way `agent add`, `agent edit` and `apply`
make or change an agent.

Only the fields given are looked at: an edit starts from the existing agent and changes what
was asked. Errors name the command line's options (`--url`, `--header` ...), as the
contract's messages do. The API key is never stored: only the name of the variable holding it.
"""

from __future__ import annotations

import math
import re
import shlex

from jobctl.budgets import budget_period, price, token_count
from jobctl.errors import InvalidInput
from jobctl.jobs import NAME_PATTERN, check_header, validate_url
from jobctl.models import Agent, AgentChange
from jobctl.policies import parse_seconds

KINDS = ("openai", "anthropic", "command")
HTTP_KINDS = ("openai", "anthropic")
ANTHROPIC_URL = "https://api.anthropic.com/v1"
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
MAX_TOKENS_LIMIT = 10_000_000
# Settings of every kind of agent, kept when an edit changes the kind.
EVERY_KIND = ("timeout", "budget_tokens", "budget_per", "price_in", "price_out")

# AgentChange fields for openai and anthropic agents only, with their options.
HTTP_FIELDS = {
    "url": "--url",
    "model": "--model",
    "api_key_env": "--api-key-env",
    "system": "--system",
    "temperature": "--temperature",
    "max_tokens": "--max-tokens",
    "headers": "--header",
}
# Where each HTTP kind's requests go after the base URL (as actions/agent.py posts them;
# not imported from there, which would load aiohttp into every `agent` command).
ENDPOINTS = {"openai": "/chat/completions", "anthropic": "/messages"}


def validate_agent_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise InvalidInput(
            f"invalid agent name {name!r}: use 1-64 characters from a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def _http_options_given(change: AgentChange) -> list[str]:
    """The options of HTTP agents that `change` gives, in HTTP_FIELDS order."""
    return [flag for field, flag in HTTP_FIELDS.items() if getattr(change, field) is not None]


def _validate_api_key_env(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    # `${NAME}` and `$NAME` (quoted, so the shell left them alone) name a variable too
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    elif text.startswith("$"):
        text = text[1:]
    if not ENV_NAME.fullmatch(text):
        # never echo the value: it may well be the key itself
        raise InvalidInput(
            "invalid --api-key-env: give the NAME of an environment variable that holds the "
            "key (A-Z, 0-9, _), like OPENAI_API_KEY, never the key itself"
        )
    return text


def _validate_model(value: str) -> str:
    model = value.strip()
    if not model or any(ch.isspace() for ch in model):
        raise InvalidInput(f"invalid --model {value!r}: give the model's name, like gpt-4o-mini")
    return model


def _validate_temperature(value: object, kind: str) -> float | None:
    if value is None or value == "":
        return None
    highest = 1.0 if kind == "anthropic" else 2.0  # the Messages API stops at 1
    number = math.nan
    if isinstance(value, str | int | float):
        try:
            number = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not 0.0 <= number <= highest:
        raise InvalidInput(
            f"invalid --temperature {value!r}: use a number from 0 to {highest:g}"
            + (" for an anthropic agent" if kind == "anthropic" else "")
        )
    return number


def _validate_max_tokens(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        number = 0
    if isinstance(value, bool) or not 0 < number <= MAX_TOKENS_LIMIT:
        raise InvalidInput(f"invalid --max-tokens {value!r}: use a whole number above 0")
    return number


def _validate_base_url(value: str, kind: str) -> str:
    url = validate_url(value).rstrip("/")
    suffix = ENDPOINTS[kind]
    if url.endswith(suffix):
        raise InvalidInput(
            f"invalid --url {value!r}: give the base URL ({url[: -len(suffix)]}); "
            f"jobctl adds {suffix}"
        )
    return url


def _validate_command(value: str) -> str:
    command = value.strip()
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise InvalidInput(f"invalid --command {value!r}: {exc}") from None
    if not words:
        raise InvalidInput("invalid --command '': give the program to run, like 'my-agent --quiet'")
    return command


def _agent_kind(change: AgentChange, existing: Agent | None) -> str:
    kind = change.kind or None
    if kind is not None and kind not in HTTP_KINDS:
        raise InvalidInput(
            f"invalid --kind {kind!r}: choose openai or anthropic (--command makes a command agent)"
        )
    if change.command is not None:
        if kind is not None:
            raise InvalidInput(
                "--command and --kind cannot be combined: --command makes a command agent"
            )
        given = _http_options_given(change)
        if given:
            raise InvalidInput(
                f"--command and {given[0]} cannot be combined: a command agent runs a local program"
            )
        return "command"
    if kind is not None:
        return kind
    if existing is not None:
        if existing.kind == "command":
            given = _http_options_given(change)
            if given:
                raise InvalidInput(
                    f"{given[0]} applies to openai and anthropic agents, and "
                    f"{existing.name!r} is a command agent (give --kind to change that)"
                )
        return existing.kind
    return "openai"


def build_agent(change: AgentChange, existing: Agent | None = None) -> Agent:
    """Validate `change` (the fields given) into a new agent or an edited copy of `existing`."""
    kind = _agent_kind(change, existing)
    keep = existing is not None and (
        existing.kind == kind or {existing.kind, kind} <= set(HTTP_KINDS)
    )
    config: dict[str, object] = dict(existing.config) if keep and existing is not None else {}
    if existing is not None and not keep:
        for key in EVERY_KIND:  # these suit every kind
            if existing.config.get(key) is not None:
                config[key] = existing.config[key]
    if kind == "command":
        if change.command is not None:
            config["command"] = _validate_command(change.command)
        if "command" not in config:
            raise InvalidInput("a command agent needs --command CMD")
    else:
        _build_http_config(config, kind, change)
    if change.timeout is not None:
        seconds = parse_seconds("timeout", change.timeout)
        config["timeout"] = seconds
        if seconds is None:
            del config["timeout"]
    _build_budget_config(config, change)
    if existing is None:
        return Agent(name=validate_agent_name(change.name or ""), kind=kind, config=config)
    return Agent(
        name=existing.name,
        kind=kind,
        config=config,
        created_at=existing.created_at,
        updated_at=existing.updated_at,
        id=existing.id,
    )


def _build_budget_config(config: dict[str, object], change: AgentChange) -> None:
    """The agent's token budget and prices ('' clears each); a budget's period defaults
    to a day and goes with it."""
    if change.budget_tokens is not None:
        config["budget_tokens"] = token_count(change.budget_tokens, "--budget-tokens")
    if change.budget_per is not None:
        config["budget_per"] = budget_period(change.budget_per) if change.budget_per else None
    if config.get("budget_tokens") is None:
        config["budget_per"] = None
    elif config.get("budget_per") is None:
        config["budget_per"] = "day"
    if change.price_in is not None:
        config["price_in"] = price(change.price_in, "--price-in")
    if change.price_out is not None:
        config["price_out"] = price(change.price_out, "--price-out")
    for key in [key for key in EVERY_KIND if config.get(key) is None]:
        config.pop(key, None)


def _build_http_config(config: dict[str, object], kind: str, change: AgentChange) -> None:
    if change.url is not None:
        config["url"] = _validate_base_url(change.url, kind)
    if kind == "anthropic":
        config.setdefault("url", ANTHROPIC_URL)
    if "url" not in config:
        raise InvalidInput(
            "an openai agent needs --url BASE_URL, like https://api.openai.com/v1 or "
            "http://localhost:11434/v1"
        )
    if change.model is not None:
        config["model"] = _validate_model(change.model)
    if not config.get("model"):
        raise InvalidInput(f"an {kind} agent needs --model NAME")
    if change.api_key_env is not None:
        config["api_key_env"] = _validate_api_key_env(change.api_key_env)
    if change.system is not None:
        config["system"] = change.system or None
    if change.temperature is not None:
        config["temperature"] = _validate_temperature(change.temperature, kind)
    elif config.get("temperature") is not None:
        config["temperature"] = _validate_temperature(config["temperature"], kind)
    if change.max_tokens is not None:
        config["max_tokens"] = _validate_max_tokens(change.max_tokens)
    if change.headers is not None:
        config["headers"] = dict(
            check_header(name, value) for name, value in change.headers.items()
        )
    for key in [key for key, value in config.items() if value is None or value == {}]:
        del config[key]  # stored as set: an absent key is an unset field
