"""HTTP checks (issue 19) from the command line: the options on add, edit, apply and
`run --url`, shown in `show` and `runs show`, against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.check_servers import check_server, make_certificate
from tests.conftest import Invoke
from tests.realparts import run_jobctl

CHECKS = (
    "--expect-body",
    "Welcome",
    "--expect-json",
    "status.ok=true",
    "--expect-json",
    'items[0].state="ready"',
    "--expect-header",
    "X-Version=^1\\.",
    "--max-duration",
    "2s",
    "--max-redirects",
    "3",
    "--timings",
)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with check_server() as url:
        yield url


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    return result


def spec_of(jobctl: Invoke, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(ok(jobctl("show", name, "--json")).stdout)["spec"]
    return spec


def test_checks_are_stored_shown_and_cleared(jobctl: Invoke, base: str) -> None:
    ok(jobctl("add", "api", "--url", base + "/json", "--every", "1h", *CHECKS))
    spec = spec_of(jobctl, "api")
    assert spec["expect_body"] == "Welcome"
    assert spec["expect_json"] == ["status.ok=true", 'items[0].state="ready"']
    assert spec["expect_headers"] == ["X-Version=^1\\."]
    assert (spec["max_duration"], spec["max_redirects"], spec["timings"]) == ("2s", 3, True)
    shown = ok(jobctl("show", "api")).stdout
    assert "expect_json" in shown and 'items[0].state="ready"' in shown

    ok(jobctl("edit", "api", "--expect-json", "status.version=3", "--max-redirects", "0"))
    spec = spec_of(jobctl, "api")
    assert spec["expect_json"] == ["status.version=3"] and spec["max_redirects"] == 0
    assert spec["expect_body"] == "Welcome"  # untouched

    ok(
        jobctl(
            "edit",
            "api",
            "--expect-json",
            "",
            "--expect-body",
            "",
            "--expect-header",
            "",
            "--max-duration",
            "",
            "--max-redirects",
            "",
            "--no-timings",
        )
    )
    spec = spec_of(jobctl, "api")
    for key in ("expect_json", "expect_body", "expect_headers", "max_duration", "max_redirects"):
        assert key not in spec
    assert spec["timings"] is False


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--expect-body", "(unclosed", "invalid --expect-body '(unclosed': "),
        ("--expect-json", "items[x]=1", "invalid --expect-json path 'items[x]'"),
        ("--expect-json", "status.ok", "invalid --expect-json 'status.ok': write it as PATH=VALUE"),
        ("--expect-header", "X-Version=[", "invalid --expect-header regex '[': "),
        ("--expect-header", "bad name", "invalid --expect-header 'bad name'"),
        ("--max-duration", "soon", "invalid --max-duration 'soon'"),
        ("--max-redirects", "-1", "invalid --max-redirects '-1'"),
    ],
)
def test_bad_checks_are_refused_naming_them(
    jobctl: Invoke, db_path: Path, option: str, value: str, message: str
) -> None:
    result = jobctl("add", "api", "--url", "http://127.0.0.1:9/", "--every", "1h", option, value)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {message}") or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert jobctl("show", "api").exit_code == 3  # nothing was added


def test_checks_apply_to_http_jobs_only(jobctl: Invoke) -> None:
    result = jobctl("add", "tidy", "--exec", "true", "--every", "1h", "--expect-body", "x")
    assert result.exit_code == 2
    assert "--expect-body applies to http jobs only" in result.stderr


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_checks_survive_export_and_apply(
    jobctl: Invoke, tmp_path: Path, base: str, fmt: str
) -> None:
    ok(jobctl("add", "api", "--url", base + "/json", "--every", "1h", *CHECKS))
    exported = ok(jobctl("export", "--format", fmt)).stdout
    document = tmp_path / f"jobs.{fmt}"
    document.write_text(exported)
    other = tmp_path / "other.db"
    ok(jobctl("apply", "-f", str(document), "--db", str(other)))
    assert ok(jobctl("export", "--format", fmt, "--db", str(other))).stdout == exported
    again = ok(jobctl("apply", "-f", str(document), "--db", str(other), "--json")).stdout
    assert '"unchanged"' in again or "unchanged" in again

    bad = exported.replace("status.ok=true", "status..ok=true")
    document.write_text(bad)
    result = jobctl("apply", "-f", str(document), "--db", str(other))
    assert result.exit_code == 2
    assert "invalid --expect-json path 'status..ok'" in result.stderr


def test_an_adhoc_run_checks_and_reports_what_failed(jobctl: Invoke, base: str) -> None:
    failed = jobctl("run", "--url", base + "/json", "--expect-json", "status.ok=false")
    assert failed.exit_code == 1
    assert "--expect-json 'status.ok=false' failed: got true" in failed.stderr

    passed = jobctl("run", "--url", base + "/redirect/2", "--expect-body", "^arrived$", "--timings")
    assert passed.exit_code == 0, passed.stderr
    [run] = json.loads(ok(jobctl("runs", "--adhoc", "--json", "--limit", "1")).stdout)
    assert run["timings"]["wait_ms"] >= 0 and run["timings"]["total_ms"] > 0
    shown = ok(jobctl("runs", "show", str(run["id"]))).stdout
    assert "redirects" in shown and base + "/redirect/0" in shown
    assert "first byte" in shown and "phases" in shown and "body size" in shown

    refused = jobctl("run", "--url", base + "/redirect/1", "--max-redirects", "0")
    assert refused.exit_code == 1
    assert "refused (--max-redirects 0)" in refused.stderr


def test_show_summarises_response_times(jobctl: Invoke, base: str) -> None:
    ok(jobctl("add", "slow", "--url", base + "/slow/120", "--manual"))
    for _ in range(3):
        ok(jobctl("run", "slow"))
    stats = json.loads(ok(jobctl("show", "slow", "--json")).stdout)["http_timings"]
    assert stats["runs"] == 3
    assert 120 <= stats["first_byte_ms"]["p50"] <= stats["total_ms"]["p95"]
    assert "response:     p50 " in ok(jobctl("show", "slow")).stdout


def test_the_shell_completes_the_check_options(db_path: Path) -> None:
    from tests.test_presentation import complete

    assert {"--expect-body", "--expect-json", "--expect-header"} <= set(
        complete(db_path, "jobctl add x --url http://a/ --expect-")
    )
    assert "--max-redirects" in complete(db_path, "jobctl run --url http://a/ --max-re")
    assert complete(db_path, "jobctl add x --expect-header content-t") == ["Content-Type"]


def test_an_https_run_times_its_tls_handshake(db_path: Path, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    env = {"SSL_CERT_FILE": str(certificate[0])}  # trusted by this run's jobctl only
    with check_server(certificate) as secure:
        result = run_jobctl(
            db_path, "run", "--url", secure + "/slow/50", "--timings", "--json", env=env
        )
    assert result.returncode == 0, result.stderr
    timings = json.loads(result.stdout)["timings"]
    assert timings["tls_ms"] > 0 and timings["connect_ms"] >= 0
    assert timings["wait_ms"] >= 50
    phases = ("redirects_ms", "dns_ms", "connect_ms", "tls_ms", "send_ms", "wait_ms", "receive_ms")
    assert abs(sum(timings[name] for name in phases) - timings["total_ms"]) < 3


def test_an_api_patch_with_null_clears_the_checks(jobctl: Invoke, db_path: Path, base: str) -> None:
    from jobctl.catalog import get_job
    from jobctl.job_changes import build_job
    from jobctl.job_patches import patch_change
    from jobctl.store import open_store
    from jobctl.timeutil import utcnow

    ok(jobctl("add", "api", "--url", base + "/json", "--every", "1h", *CHECKS))
    store = open_store(db_path)
    job = get_job(store, "api")
    keys = ("expect_body", "expect_json", "expect_headers", "max_duration", "max_redirects")
    change = patch_change(job, {"spec": {key: None for key in (*keys, "timings")}})
    spec = build_job(change, existing=job, now=utcnow()).spec.to_dict()
    assert not set(keys) & set(spec)
    assert spec["timings"] is False and spec["url"] == base + "/json"
    kept = patch_change(job, {"spec": {"max_redirects": 5}})
    spec = build_job(kept, existing=job, now=utcnow()).spec.to_dict()
    assert spec["max_redirects"] == 5 and spec["expect_json"] == list(CHECKS[3:6:2])
