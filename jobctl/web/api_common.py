"""What the API's handlers share: answering with the CLI's JSON, reading a JSON body and
query parameters with the CLI's messages, and the web side's store and clock."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from aiohttp import web

from jobctl.errors import InvalidInput
from jobctl.reports import ListingCache
from jobctl.store import Store
from jobctl.web.context import CONTEXT, WebContext

PREFIX = "/api/v1"
# `list --json` entries kept between requests (jobctl.reports.ListingCache): GET /api/v1/jobs
# and the dashboard's jobs page share it.
LISTING = web.AppKey("jobctl_job_listing", ListingCache)
MAX_BODY = 1024 * 1024


def context_of(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


def store_of(request: web.Request) -> Store:
    return request.app[CONTEXT].store


def now() -> datetime:
    from jobctl.timeutil import utcnow

    return utcnow()


def answer(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`data` as the CLI's --json prints it (same encoder, same escapes), on one line: the
    indented form costs a third more on a list of 1,000 jobs."""
    from jobctl.output import to_json_line

    return web.Response(
        text=to_json_line(data) + "\n",
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_answer(message: str, status: int) -> web.Response:
    return answer({"error": message}, status)


async def json_body(request: web.Request) -> dict[str, object]:
    """The request's body as a JSON object, or InvalidInput (400)."""
    raw = await _whole_body(request)
    try:
        data = json.loads(raw.decode("utf-8") or "null")
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # no lone \ud800-\udfff escape
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"the body is not valid JSON: {error}") from None
    except UnicodeEncodeError:
        raise InvalidInput(
            "the body is not valid JSON: a \\u escape of half a surrogate pair is not text"
        ) from None
    except RecursionError:
        raise InvalidInput("the body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data


async def _whole_body(request: web.Request) -> bytes:
    """Every byte of the body (one read gives only what has arrived so far), or InvalidInput
    (400) past MAX_BODY."""
    too_large = InvalidInput(f"the body is larger than {MAX_BODY} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large
    raw = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY:
            raise too_large
    return bytes(raw)


def query_int(
    request: web.Request, key: str, default: int, *, low: int = 0, high: int = 2**63 - 1
) -> int:
    """Query parameter `key` as a whole number in [low, high], or InvalidInput (400)."""
    text = request.query.get(key)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InvalidInput(f"invalid {key} {text!r}: give a whole number from {low} to {high}")
    return int(text)


def query_flag(request: web.Request, key: str) -> bool:
    """Query parameter `key` as true/false (absent: false), or InvalidInput (400)."""
    if key not in request.query:
        return False
    text = request.query[key].lower()
    if text in ("true", "1", "yes", ""):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidInput(f"invalid {key} {text!r}: give true or false")


def query_list(request: web.Request, key: str) -> list[str]:
    """Every value of a repeatable parameter, comma-separated values split too."""
    return [part for value in request.query.getall(key, []) for part in value.split(",") if part]


def run_id_of(request: web.Request) -> int:
    """The {id} of a run's URL, as `runs show` reads a run id."""
    text = request.match_info["id"]
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**63:
        return int(text)
    raise InvalidInput(f"invalid run id {text!r}: run ids are positive whole numbers")
