"""The options `agent add` and `agent edit` share, and how their values become an
AgentChange."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from jobctl.cli.shared import F

AGENT_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--kind",
        type=click.Choice(["openai", "anthropic"]),
        help="API the agent speaks (default openai: any OpenAI-compatible server).",
    ),
    click.option(
        "--url",
        metavar="URL",
        help="Base URL, like http://localhost:11434/v1 (anthropic: "
        "https://api.anthropic.com/v1 by default).",
    ),
    click.option("--model", metavar="M", help="Model name, like gpt-4o-mini or llama3.1."),
    click.option(
        "--api-key-env",
        metavar="VAR",
        help="Environment variable holding the API key (the key is never stored).",
    ),
    click.option("--system", metavar="TEXT|@FILE", help="System prompt."),
    click.option(
        "--temperature", metavar="F", help="Sampling temperature, 0 to 2 (anthropic: 0 to 1)."
    ),
    click.option(
        "--max-tokens", metavar="N", help="Longest answer in tokens (anthropic default 1024)."
    ),
    click.option(
        "--header",
        multiple=True,
        metavar="'K: V'",
        help="Extra request header (values may use ${NAME}); repeat for more.",
    ),
    click.option(
        "--timeout", metavar="D", help="Give up after D (default 10m; a job's --timeout wins)."
    ),
    click.option(
        "--budget-tokens",
        metavar="N",
        help="Skip the slots of jobs using this agent once its calls would use more than N "
        "tokens per --budget-per period (0 or '' clears).",
    ),
    click.option(
        "--budget-per",
        type=click.Choice(["day", "week", "month"]),
        help="The period of --budget-tokens (default day).",
    ),
    click.option(
        "--price-in", metavar="USD", help="Price per million input tokens, for cost estimates."
    ),
    click.option(
        "--price-out", metavar="USD", help="Price per million output tokens, for cost estimates."
    ),
    click.option(
        "--command",
        metavar="CMD",
        help="Make a command agent: the program to run; the prompt goes to its stdin, "
        "or replaces {prompt} as one argument.",
    ),
]

if TYPE_CHECKING:
    from jobctl.models import AgentChange


def agent_options(func: F) -> F:
    for option in reversed(AGENT_OPTIONS):
        func = option(func)
    return func


def agent_change(
    name: str | None,
    kind: str | None,
    url: str | None,
    model: str | None,
    api_key_env: str | None,
    system: str | None,
    temperature: str | None,
    max_tokens: str | None,
    header: tuple[str, ...],
    timeout: str | None,
    budget_tokens: str | None,
    budget_per: str | None,
    price_in: str | None,
    price_out: str | None,
    command: str | None,
) -> AgentChange:
    """The options given as an AgentChange: `--system @FILE` read, headers split."""
    from jobctl.jobs import parse_header, read_text_argument
    from jobctl.models import AgentChange

    return AgentChange(
        name=name,
        kind=kind,
        url=url,
        model=model,
        api_key_env=api_key_env,
        system=read_text_argument(system, what="--system") if system else system,
        temperature=temperature,
        max_tokens=max_tokens,
        headers=dict(parse_header(item) for item in header if item) if header else None,
        timeout=timeout,
        budget_tokens=budget_tokens,
        budget_per=budget_per,
        price_in=price_in,
        price_out=price_out,
        command=command,
    )
