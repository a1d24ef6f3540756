"""`jobctl agent`: add, edit, list, show, rm and test the agents that agent jobs prompt."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli.agent_options import agent_change, agent_options
from jobctl.cli.complete import complete_agent_names
from jobctl.cli.shared import cli, db_option, json_option, open_db, read_db
from jobctl.errors import Failed, InvalidInput

if TYPE_CHECKING:
    from jobctl.models import Agent


def _now() -> datetime:
    from jobctl.timeutil import utcnow

    return utcnow()


def _describe(agent: Agent) -> str:
    from jobctl.agents import agent_summary

    if agent.kind == "command":
        return f"command agent {agent.name!r}: {agent_summary(agent)}"
    return (
        f"{agent.kind} agent {agent.name!r}: {agent.config.get('model')} at {agent_summary(agent)}"
    )


@cli.group()
@db_option
def agent() -> None:
    """Agents: named profiles that agent jobs send their prompts to.

    An openai agent is any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM,
    LiteLLM, llama.cpp, LM Studio); an anthropic agent uses the Messages API; a command agent
    is a local program that reads the prompt and answers on stdout.

    \b
    Examples:
      jobctl agent add local --url http://localhost:11434/v1 --model llama3.1
      jobctl agent test local 'Say hello'
      jobctl add digest --agent local --prompt 'Summarise {payload}' --manual
    """


@agent.command()
@click.argument("name")
@agent_options
@db_option
@json_option
@click.pass_context
def add(ctx: click.Context, /, name: str, as_json: bool, **options: Any) -> None:
    """Add an agent: --url and --model (openai, anthropic), or --command.

    \b
    Examples:
      jobctl agent add gpt --url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
      jobctl agent add claude --kind anthropic --model claude-sonnet-4-5 --api-key-env ANTHROPIC_API_KEY
      jobctl agent add coder --command 'my-agent --print {prompt}'
    """
    from jobctl.agents import add_agent, agent_to_dict
    from jobctl.output import to_json

    added = add_agent(open_db(ctx), agent_change(name, **options), _now())
    if as_json:
        click.echo(to_json(agent_to_dict(added, [])))
    else:
        click.echo(f"added {_describe(added)}")


@agent.command()
@click.argument("name", shell_complete=complete_agent_names)
@agent_options
@db_option
@json_option
@click.pass_context
def edit(ctx: click.Context, /, name: str, as_json: bool, **options: Any) -> None:
    """Change an agent: each option given replaces that field; '' clears an optional one.

    \b
    Examples:
      jobctl agent edit local --model qwen2.5 --temperature 0.2
      jobctl agent edit gpt --header 'OpenAI-Organization: ${OPENAI_ORG}'
    """
    from jobctl.agents import agent_to_dict, edit_agent, jobs_using
    from jobctl.output import to_json

    change = agent_change(None, **options)
    from jobctl.models import AgentChange

    if change == AgentChange():
        raise InvalidInput(
            "nothing to change: give at least one option (see `jobctl agent edit --help`)"
        )
    store = open_db(ctx)
    edited = edit_agent(store, name, change, _now())
    if as_json:
        click.echo(to_json(agent_to_dict(edited, jobs_using(store, edited.name))))
    else:
        click.echo(f"updated {_describe(edited)}")


@agent.command(name="list")
@db_option
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List agents with their kind, model, where prompts go and the jobs using them.

    \b
    Examples:
      jobctl agent list
      jobctl agent list --json | jq '.[].name'
    """
    from jobctl.agents import agent_summary, agent_to_dict, jobs_using, list_agents
    from jobctl.output import table, to_json

    store = read_db(ctx)
    agents = list_agents(store)
    users = [jobs_using(store, item.name) for item in agents]
    if as_json:
        click.echo(
            to_json([agent_to_dict(item, jobs) for item, jobs in zip(agents, users, strict=True)])
        )
        return
    if not agents:
        click.echo(
            "no agents yet: add one with `jobctl agent add NAME --url URL --model M`", err=True
        )
        return
    rows = [
        [
            item.name,
            item.kind,
            item.config.get("model") or "-",
            agent_summary(item),
            ", ".join(jobs) or "-",
        ]
        for item, jobs in zip(agents, users, strict=True)
    ]
    click.echo(table(rows, ["NAME", "KIND", "MODEL", "TARGET", "JOBS"]))


@agent.command()
@click.argument("name", shell_complete=complete_agent_names)
@db_option
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show an agent's settings and the jobs that use it (secrets redacted).

    \b
    Examples:
      jobctl agent show local
      jobctl agent show local --json
    """
    from jobctl.agents import agent_to_dict, get_agent, jobs_using
    from jobctl.output import key_values, to_json
    from jobctl.timeutil import format_duration, local_text

    store = read_db(ctx)
    found = get_agent(store, name)
    data = agent_to_dict(found, jobs_using(store, found.name))
    if as_json:
        click.echo(to_json(data))
        return
    pairs: list[tuple[str, object]] = [("name", data["name"]), ("kind", data["kind"])]
    if found.kind == "command":
        pairs.append(("command", data["command"]))
    else:
        pairs += [
            ("url", data["url"]),
            ("model", data["model"]),
            ("api key env", data["api_key_env"]),
            ("system", data["system"]),
            ("temperature", data["temperature"]),
            ("max tokens", data["max_tokens"]),
            ("headers", ", ".join(f"{k}: {v}" for k, v in data["headers"].items()) or None),
        ]
    pairs += [
        (
            "timeout",
            format_duration(found.timeout) if found.timeout is not None else "10m (default)",
        ),
        ("budget", _budget_text(store, found)),
        ("prices", _price_text(data["price_in"], data["price_out"])),
        ("jobs", ", ".join(data["jobs"]) or None),
        ("created", local_text(found.created_at) if found.created_at else None),
        ("updated", local_text(found.updated_at) if found.updated_at else None),
    ]
    click.echo(key_values(pairs))


@agent.command()
@click.argument(
    "names", metavar="NAME...", nargs=-1, required=True, shell_complete=complete_agent_names
)
@click.option("--force", is_flag=True, help="Remove even if jobs use it; those jobs are paused.")
@db_option
@click.pass_context
def rm(ctx: click.Context, names: tuple[str, ...], force: bool) -> None:
    """Remove agents (all or none); refused while a job uses one, unless --force.

    \b
    Examples:
      jobctl agent rm old-model
      jobctl agent rm local --force
    """
    from jobctl.agents import remove_agents

    for removed in remove_agents(open_db(ctx), names, force=force, now=_now()):
        click.echo(f"removed agent {removed.agent!r}")
        for job in removed.paused_jobs:
            click.echo(f"paused job {job!r}: agent {removed.agent} was removed", err=True)


@agent.command(name="test")
@click.argument("name", shell_complete=complete_agent_names)
@click.argument("prompt")
@click.option("--timeout", metavar="D", help="Give up after D (default: the agent's, or 10m).")
@db_option
@json_option
@click.pass_context
def test_(ctx: click.Context, name: str, prompt: str, timeout: str | None, as_json: bool) -> None:
    """Send PROMPT (TEXT, @FILE or -) to an agent now and print its answer.

    The answer goes to stdout; model, finish reason, tokens and latency to stderr. `${NAME}`
    references come from this environment (and JOBCTL_ENV_FILE). Exit 0 on an answer, 1 on
    a failure.

    \b
    Examples:
      jobctl agent test local 'Reply with OK'
      jobctl agent test claude @prompt.txt --json
    """
    from jobctl.actions import FireContext
    from jobctl.actions.agent import ask_now
    from jobctl.agents import get_agent, run_timeout
    from jobctl.jobs import read_text_argument
    from jobctl.output import to_json
    from jobctl.policies import parse_seconds
    from jobctl.secrets import fire_environment

    found = get_agent(read_db(ctx), name)
    text = read_text_argument(prompt, what="PROMPT")
    seconds = parse_seconds("timeout", timeout) if timeout else None
    context = FireContext(
        job=f"agent-test.{found.name}",
        run_id=0,
        scheduled_for=_now(),
        attempt=1,
        timeout=seconds if seconds is not None else run_timeout(found),
        env=fire_environment(None),
    )
    outcome = ask_now(found, text, context)
    details = outcome.details
    if as_json:
        click.echo(
            to_json(
                {
                    "answer": outcome.output if outcome.ok else None,
                    "status": outcome.status,
                    "error": outcome.error,
                    "model": details.get("model"),
                    "finish_reason": details.get("finish_reason"),
                    "usage": details.get("usage"),
                    "latency_ms": details.get("latency_ms"),
                }
            )
        )
        if not outcome.ok:
            ctx.exit(1)
        return
    if not outcome.ok:
        raise Failed(f"agent {found.name!r}: {outcome.error}")
    from jobctl.output import visible

    answer = visible(outcome.output or "")
    click.echo(answer, nl=not answer.endswith("\n"))
    click.echo(visible(_summary_line(details, outcome.exit_code)), err=True)


def _budget_text(store: Any, agent: Agent) -> str | None:
    """`800 of 1,000 tokens this day (80%)`: the agent's budget and its use so far."""
    from jobctl.budgets import agent_budget, budget_use, describe_use

    budget = agent_budget(agent)
    if budget is None:
        return None
    use = budget_use(store, budget, None, _now()).to_dict()
    return describe_use(use).removeprefix(f"agent {agent.name}: ")


def _price_text(price_in: float | None, price_out: float | None) -> str | None:
    if price_in is None and price_out is None:
        return None
    return f"${price_in or 0:g} in, ${price_out or 0:g} out per million tokens"


def _summary_line(details: Mapping[str, object], exit_code: int | None) -> str:
    if details.get("kind") == "command":
        return f"command agent · exit {exit_code} · {details.get('latency_ms')} ms"
    usage = details.get("usage")
    if not isinstance(usage, Mapping):
        usage = {}
    tokens = "tokens unknown"
    if usage.get("total_tokens") is not None:

        def count(key: str) -> str:
            return "?" if usage.get(key) is None else str(usage[key])

        tokens = (
            f"tokens {count('prompt_tokens')} in + {count('completion_tokens')} out = "
            f"{usage['total_tokens']}"
        )
    parts = [
        f"model {details.get('model') or '-'}",
        f"finish {details.get('finish_reason') or '-'}",
        tokens,
        f"{details.get('latency_ms')} ms",
    ]
    line = " · ".join(parts)
    if details.get("note"):
        line += f" ({details['note']})"
    return line
