"""HTTP checks (issue 19) at the action: assertions, timings, sizes and redirects, against a
real aiohttp server on 127.0.0.1 (tests/check_servers.py)."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from jobctl.actions import OUTPUT_CAP, FireContext, Outcome
from jobctl.actions.http import HttpFirer
from jobctl.errors import InvalidInput
from jobctl.http_checks import parse_path, validate_header_check, validate_json_check
from jobctl.models import HttpSpec
from tests.check_servers import check_server

SECRET = "tok-Very-Secret-9"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with check_server() as url:
        yield url


def fire(url: str, *, env: dict[str, str] | None = None, **spec: Any) -> Outcome:
    async def scenario() -> Outcome:
        async with HttpFirer() as firer:
            ctx = FireContext(
                job="check",
                run_id=1,
                scheduled_for=datetime(2026, 1, 1, tzinfo=UTC),
                attempt=1,
                timeout=30,
                env=env or {},
            )
            return await firer.fire(HttpSpec(url=url, **spec), ctx)

    return asyncio.run(scenario())


# ----------------------------------------------------------------------------- assertions


def test_json_assertions_hold(base: str) -> None:
    outcome = fire(
        base + "/json",
        expect_json=("status.ok=true", 'items[0].state="ready"', "items[1].state=new"),
    )
    assert outcome.status == "succeeded", outcome.error
    assert fire(base + "/json", expect_json=("$.status.version=3",)).ok


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        ("status.ok=false", "got true"),
        ("status.ok=1", "got true"),  # true is not 1
        ('items[0].state="done"', 'got "ready"'),
        ("items[5].state=ready", "no value at that path"),
        ("status.missing=1", "no value at that path"),
    ],
)
def test_a_json_assertion_that_fails_names_itself_and_what_came(
    base: str, check: str, problem: str
) -> None:
    outcome = fire(base + "/json", expect_json=("status.ok=true", check))
    assert outcome.status == "failed"
    assert outcome.http_status == 200
    assert outcome.error is not None
    assert outcome.error.startswith(f"--expect-json {check!r} failed: ")
    assert problem in outcome.error


def test_expect_json_on_a_body_that_is_not_json(base: str) -> None:
    outcome = fire(base + "/html", expect_json=("status.ok=true",))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "the body is not JSON" in outcome.error and "<title>Welcome home" in outcome.error


def test_expect_body_searches_the_decoded_body(base: str) -> None:
    assert fire(base + "/html", expect_body=r"<title>Welcome\s+home</title>").ok
    outcome = fire(base + "/html", expect_body="maintenance")
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("--expect-body 'maintenance' failed: not found in body")
    assert "all systems go" in outcome.error


def test_expect_header_wants_the_header_and_its_value(base: str) -> None:
    assert fire(base + "/html", expect_headers=("X-Version", r"content-type=^text/html")).ok
    missing = fire(base + "/html", expect_headers=("X-Build",))
    assert missing.error == "--expect-header 'X-Build' failed: no X-Build header in the response"
    wrong = fire(base + "/html", expect_headers=(r"X-Version=^2\.",))
    assert wrong.error == "--expect-header 'X-Version=^2\\\\.' failed: X-Version is \"1.2.3\""


def test_max_duration_fails_a_slow_answer_that_completed(base: str) -> None:
    assert fire(base + "/slow/10", max_duration="2s").ok
    outcome = fire(base + "/slow/300", max_duration="100ms")
    assert outcome.status == "failed"
    assert outcome.http_status == 200 and outcome.output == "finally"
    assert outcome.error is not None
    assert outcome.error.startswith("--max-duration 100ms failed: the request took ")


def test_the_status_is_checked_first(base: str) -> None:
    outcome = fire(base + "/json", expect="204", expect_json=("status.ok=false",))
    assert outcome.error == "HTTP 200 OK (expected 204)"


def test_an_excerpt_in_an_error_is_redacted(base: str) -> None:
    outcome = fire(
        base + "/text?say=${TOKEN}-here", env={"TOKEN": SECRET}, expect_body="nothing like it"
    )
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert SECRET not in outcome.error and '"***-here"' in outcome.error


def test_bad_assertions_are_refused_naming_them() -> None:
    with pytest.raises(InvalidInput, match=r"invalid --expect-json path 'items\[x\]'"):
        validate_json_check("items[x]=1")
    with pytest.raises(InvalidInput, match="write it as PATH=VALUE"):
        validate_json_check("status.ok")
    with pytest.raises(InvalidInput, match=r"invalid --expect-header regex '\(': "):
        validate_header_check("X-Version=(")
    assert parse_path("a.b[2][0].c") == ("a", "b", 2, 0, "c")


# ----------------------------------------------------------------------------- timings


def test_every_run_has_first_byte_and_total(base: str) -> None:
    timings = fire(base + "/slow/150").details["timings"]
    assert set(timings) == {"first_byte_ms", "total_ms"}
    assert 150 <= timings["first_byte_ms"] <= timings["total_ms"]


def test_timed_runs_have_phases_that_add_up_to_the_total(base: str) -> None:
    outcome = fire(base + "/slow/200", timings=True)
    assert outcome.ok, outcome.error
    timings = outcome.details["timings"]
    phases = ("redirects_ms", "dns_ms", "connect_ms", "tls_ms", "send_ms", "wait_ms", "receive_ms")
    assert abs(sum(timings[name] for name in phases) - timings["total_ms"]) < 3
    assert timings["wait_ms"] >= 200  # the server's delay is spent waiting for the first byte
    assert 200 <= timings["first_byte_ms"] < 200 + 1000
    assert timings["connect_ms"] > 0  # a new connection was made


def test_timed_runs_through_redirects_count_the_earlier_hops(base: str) -> None:
    outcome = fire(base + "/redirect/3", timings=True)
    timings = outcome.details["timings"]
    assert timings["redirects_ms"] > 0
    assert timings["redirects_ms"] + timings["wait_ms"] <= timings["total_ms"] + 0.1


# ----------------------------------------------------------------------------- redirects, size


def test_redirects_are_counted_and_limited(base: str) -> None:
    outcome = fire(base + "/redirect/3")
    assert outcome.ok and outcome.output == "arrived"
    assert outcome.details["redirects"] == 3
    assert outcome.details["final_url"] == base + "/redirect/0"
    assert fire(base + "/redirect/2", max_redirects=2).ok
    refused = fire(base + "/redirect/3", max_redirects=2)
    assert refused.status == "failed"
    assert refused.error == "too many redirects (more than 2)"


def test_max_redirects_0_refuses_any(base: str) -> None:
    outcome = fire(base + "/redirect/1", max_redirects=0)
    assert outcome.status == "failed"
    assert outcome.http_status == 302
    assert outcome.error == "HTTP 302: a redirect, refused (--max-redirects 0)"
    assert outcome.details["redirects"] == 0
    assert fire(base + "/redirect/1", max_redirects=0, expect="302").ok  # when it is the point


def test_a_huge_body_is_measured_without_being_stored(base: str) -> None:
    megabytes = 1024  # 1 GiB, generated as it is sent
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = fire(base + f"/huge/{megabytes}")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert outcome.ok, outcome.error
    assert outcome.details["body_size"] == megabytes * 1024 * 1024
    assert outcome.output is not None
    assert outcome.output.endswith(f"[output truncated: {1 << 30} bytes in all, {OUTPUT_CAP} kept]")
    assert len(outcome.output) < OUTPUT_CAP + 100
    assert grown_mb < 100, f"reading the body grew the process by {grown_mb:.0f} MB"


def test_a_small_body_size_is_its_length(base: str) -> None:
    outcome = fire(base + "/json")
    assert outcome.details["body_size"] == len(outcome.output or "")
