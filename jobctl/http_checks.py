"""Assertions on an HTTP response: their rules (checked on add, edit and apply) and how a
response is judged against them. No aiohttp here: the action passes in what came back.

`--expect-body REGEX` is searched in the decoded body, `--expect-json PATH=VALUE` compares
one value of the JSON body (a dotted path with list indexes, `items[0].state`; VALUE is JSON,
or plain text for a string), `--expect-header NAME[=REGEX]` wants a header (matching REGEX),
`--max-duration D` fails a run slower than D even when it completed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from jobctl.errors import InvalidInput
from jobctl.models import HttpSpec, JobChange
from jobctl.timeutil import format_duration, parse_duration

HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")
EXCERPT = 120  # characters of what came back shown in an error
MAX_REDIRECTS_LIMIT = 100

PathStep = str | int
_MISSING = object()


# ---------------------------------------------------------------------------- rules


def validate_regex(text: str, *, what: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise InvalidInput(f"invalid {what} {text!r}: {exc}") from None
    return text


@lru_cache(maxsize=256)
def parse_path(text: str) -> tuple[PathStep, ...]:
    """`status.ok`, `items[0].state`, `$.a.b` as its steps; raises InvalidInput."""
    path = text.strip()
    if path.startswith("$"):
        path = path[1:]
    steps: list[PathStep] = []
    position = 0
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if not match or (position == 0 and path.startswith(".") and text.strip()[:1] != "$"):
            raise InvalidInput(
                f"invalid --expect-json path {text!r}: use dotted keys and list indexes, "
                "like status.ok or items[0].state"
            )
        key, index = match.groups()
        steps.append(int(index) if index is not None else key)
        position = match.end()
    if not steps:
        raise InvalidInput(f"invalid --expect-json path {text!r}: it is empty")
    return tuple(steps)


@lru_cache(maxsize=256)
def split_json_check(text: str) -> tuple[tuple[PathStep, ...], object]:
    """`PATH=VALUE` as the path's steps and the expected value (JSON, else the text)."""
    path, sep, value = text.partition("=")
    if not sep:
        raise InvalidInput(f"invalid --expect-json {text!r}: write it as PATH=VALUE")
    steps = parse_path(path)
    try:
        expected: object = json.loads(value)
    except ValueError:
        expected = value
    return steps, expected


def validate_json_check(text: str) -> str:
    split_json_check(text.strip())
    return text.strip()


def split_header_check(text: str) -> tuple[str, str | None]:
    """`NAME` or `NAME=REGEX` as the name and the pattern (None: present is enough)."""
    name, sep, pattern = text.partition("=")
    name = name.strip()
    if not HEADER_NAME.fullmatch(name):
        raise InvalidInput(f"invalid --expect-header {text!r}: write it as NAME or NAME=REGEX")
    return name, pattern if sep else None


def validate_header_check(text: str) -> str:
    name, pattern = split_header_check(text)
    if pattern is None:
        return name
    validate_regex(pattern, what="--expect-header regex")
    return f"{name}={pattern}"


def validate_max_duration(text: str) -> str:
    seconds = parse_duration(text, what="--max-duration", allow_ms=True).total_seconds()
    if seconds <= 0:
        raise InvalidInput(f"invalid --max-duration {text!r}: it must be more than 0")
    return text.strip()


def validate_max_redirects(value: object) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) > MAX_REDIRECTS_LIMIT:
        raise InvalidInput(
            f"invalid --max-redirects {value!r}: use a number from 0 (refuse redirects) "
            f"to {MAX_REDIRECTS_LIMIT}"
        )
    return int(text)


def changed_checks(change: JobChange, old: HttpSpec | None) -> HttpSpec:
    """The assertions and the redirect limit: the old ones, with those given replaced."""
    spec = old or HttpSpec(url="")
    if change.expect_body is not None:
        body = change.expect_body
        spec = replace(
            spec, expect_body=validate_regex(body, what="--expect-body") if body else None
        )
    if change.expect_json is not None:
        checks = tuple(validate_json_check(item) for item in change.expect_json if item)
        spec = replace(spec, expect_json=checks)
    if change.expect_headers is not None:
        wanted = tuple(validate_header_check(item) for item in change.expect_headers if item)
        spec = replace(spec, expect_headers=wanted)
    if change.max_duration is not None:
        limit = change.max_duration
        spec = replace(spec, max_duration=validate_max_duration(limit) if limit else None)
    if change.timings is not None:
        spec = replace(spec, timings=change.timings)
    if change.max_redirects is not None:
        given = change.max_redirects
        spec = replace(spec, max_redirects=None if given == "" else validate_max_redirects(given))
    return spec


# ---------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Checks:
    """The assertions of one spec beyond the status."""

    body: str | None = None
    json: Sequence[str] = ()
    headers: Sequence[str] = ()
    max_duration: str | None = None

    @property
    def reads_body(self) -> bool:
        return self.body is not None or bool(self.json)

    def __bool__(self) -> bool:
        return self.reads_body or bool(self.headers) or self.max_duration is not None


@dataclass(frozen=True)
class Response:
    """What came back, as far as the checks look at it."""

    body: str  # decoded, at most what the action kept for checking
    headers: Mapping[str, str]  # case-insensitive mapping
    seconds: float


def failed_check(checks: Checks, response: Response) -> str | None:
    """The first assertion that does not hold, as one line (not redacted), or None."""
    if checks.max_duration is not None:
        limit = parse_duration(checks.max_duration, allow_ms=True).total_seconds()
        if response.seconds > limit:
            return (
                f"--max-duration {checks.max_duration} failed: the request took "
                f"{format_duration(response.seconds)}"
            )
    for item in checks.headers:
        problem = _header_problem(item, response.headers)
        if problem:
            return problem
    if checks.body is not None and not re.search(checks.body, response.body):
        return f"--expect-body {checks.body!r} failed: not found in body {_excerpt(response.body)}"
    if checks.json:
        return _json_problem(checks.json, response.body)
    return None


def _header_problem(item: str, headers: Mapping[str, str]) -> str | None:
    name, pattern = split_header_check(item)
    value = headers.get(name)
    if value is None:
        return f"--expect-header {item!r} failed: no {name} header in the response"
    if pattern is not None and not re.search(pattern, value):
        return f"--expect-header {item!r} failed: {name} is {_excerpt(value)}"
    return None


def _json_problem(items: Sequence[str], body: str) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return f"--expect-json {items[0]!r} failed: the body is not JSON: {_excerpt(body)}"
    for item in items:
        steps, expected = split_json_check(item)
        found = _lookup(document, steps)
        if found is _MISSING:
            return f"--expect-json {item!r} failed: no value at that path in {_excerpt(body)}"
        if not _same(found, expected):
            shown = _excerpt(json.dumps(found, ensure_ascii=False), quoted=False)
            return f"--expect-json {item!r} failed: got {shown}"
    return None


def _same(found: object, expected: object) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    return found == expected and isinstance(found, bool) == isinstance(expected, bool)


def _lookup(document: object, steps: Sequence[PathStep]) -> object:
    current = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return _MISSING
            current = current[step]
        elif isinstance(current, Mapping) and step in current:
            current = current[step]
        else:
            return _MISSING
    return current


def _excerpt(text: str, *, quoted: bool = True) -> str:
    """The start of `text` on one line, quoted unless it is JSON already."""
    flat = " ".join(text.split())
    if len(flat) > EXCERPT:
        flat = flat[:EXCERPT] + "..."
    return json.dumps(flat, ensure_ascii=False) if quoted else flat


__all__ = [
    "Checks",
    "Response",
    "changed_checks",
    "failed_check",
    "parse_path",
    "split_header_check",
    "split_json_check",
    "validate_header_check",
    "validate_json_check",
    "validate_max_duration",
    "validate_max_redirects",
    "validate_regex",
]
