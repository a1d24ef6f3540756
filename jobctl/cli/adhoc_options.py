"""`jobctl run`'s action options: an ad hoc run (`run --exec CMD`, `--url URL`, `--agent A
--prompt TEXT`) with the policies that make sense for one fire, turned into a JobChange the
way `add` turns its options into one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from jobctl.cli.http_check_options import HTTP_CHECK_OPTIONS
from jobctl.cli.shared import F

if TYPE_CHECKING:
    from jobctl.models import JobChange

ADHOC_OPTIONS: list[Callable[[F], F]] = [
    click.option("--exec", "exec_", metavar="CMD", help="Ad hoc: run this command line once."),
    click.option("--cwd", metavar="DIR", help="With --exec: working directory."),
    click.option(
        "--env", multiple=True, metavar="K=V", help="With --exec: environment variable; repeat."
    ),
    click.option(
        "--shell/--no-shell",
        default=None,
        help="With --exec: run CMD with /bin/sh -c (the default), or split it into words.",
    ),
    click.option("--url", metavar="URL", help="Ad hoc: request this URL once."),
    click.option("--method", metavar="M", help="With --url: HTTP method (default GET, or POST)."),
    click.option("--header", multiple=True, metavar="'K: V'", help="With --url: header; repeat."),
    click.option("--body", metavar="TEXT|@FILE|-", help="With --url: request body."),
    click.option("--json-body", metavar="JSON", help="With --url: JSON body; sets Content-Type."),
    click.option("--expect", metavar="CODES", help="With --url: success statuses (default 2xx)."),
    *HTTP_CHECK_OPTIONS,
    click.option("--agent", metavar="AGENT", help="Ad hoc: prompt this agent once."),
    click.option("--team", metavar="TEAM", help="Ad hoc: prompt this team once."),
    click.option("--prompt", metavar="TEXT|@FILE|-", help="With --agent or --team: the prompt."),
    click.option("--deliver", metavar="URL", help="With --agent: POST the answer as JSON to URL."),
    click.option("--model", metavar="M", help="With --agent: ask this model, not the agent's."),
    click.option("--max-tokens", metavar="N", help="With --agent: at most N tokens an answer."),
    click.option("--timeout", metavar="D", help="Ad hoc: give up after D."),
    click.option("--retries", metavar="N", help="Ad hoc: retries after a failure (default 0)."),
    click.option("--backoff", metavar="D", help="Ad hoc: first retry delay (default 10s)."),
]


def adhoc_options(func: F) -> F:
    for option in reversed(ADHOC_OPTIONS):
        func = option(func)
    return func


def adhoc_given(params: dict[str, Any]) -> list[str]:
    """The action options given, as `--name` (for messages)."""
    return [
        "--" + key.rstrip("_").replace("_", "-")
        for key, value in params.items()
        if value is not None and value != ()
    ]


def adhoc_change(params: dict[str, Any]) -> JobChange:
    """The action options as a JobChange for a job that is never stored (`--manual`)."""
    from jobctl.cli.job_options import change_from_click

    return change_from_click({**params, "manual": True})
