"""The HTTP assertion and redirect options that `add`, `edit` and `run --url` share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from jobctl.cli.complete import complete_response_headers
from jobctl.cli.shared import F

HTTP_CHECK_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--expect-body",
        metavar="REGEX",
        help="HTTP: the body must match REGEX (searched in the decoded body); '' clears.",
    ),
    click.option(
        "--expect-json",
        multiple=True,
        metavar="PATH=VALUE",
        help="HTTP: a JSON body's value at PATH (like status.ok=true or items[0].state=ready); "
        "repeat for more; '' clears.",
    ),
    click.option(
        "--expect-header",
        multiple=True,
        metavar="NAME[=REGEX]",
        shell_complete=complete_response_headers,
        help="HTTP: the response has header NAME (matching REGEX); repeat for more; '' clears.",
    ),
    click.option(
        "--max-duration",
        metavar="D",
        help="HTTP: a response slower than D fails the run (like 2s or 500ms); '' clears.",
    ),
    click.option(
        "--max-redirects",
        metavar="N",
        help="HTTP: redirects to follow (default 10; 0 refuses any); '' clears.",
    ),
    click.option(
        "--timings/--no-timings",
        default=None,
        help="HTTP: record each phase's time (DNS, connect, send, wait, receive); first byte "
        "and total are always recorded.",
    ),
]


def check_fields(given: dict[str, Any]) -> dict[str, Any]:
    """The JobChange fields of the options given (a repeatable one as a tuple)."""
    expect_json, expect_header = given.get("expect_json"), given.get("expect_header")
    return {
        "expect_body": given.get("expect_body"),
        "expect_json": tuple(expect_json) if expect_json else None,
        "expect_headers": tuple(expect_header) if expect_header else None,
        "max_duration": given.get("max_duration"),
        "max_redirects": given.get("max_redirects"),
        "timings": given.get("timings"),
    }
