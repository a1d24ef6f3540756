"""Secrets come back transformed (JSON-escaped, percent-encoded, lower-cased in a host name):
every form is masked wherever output is stored or printed (issue 12.4)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import yarl

from jobctl.actions import Expansion
from jobctl.log_redaction import RedactingLogFilter
from jobctl.secrets import (
    MIN_SECRET_LENGTH,
    FireEnvironment,
    Redactor,
    expand_url,
)
from tests.realparts import DaemonProcess, Reply, Sink, query, run_jobctl, wait_until

TOKEN = "Sécret&Tok?en#47@x/y z"  # non-ASCII, URL delimiters and a space
HOST = "Zq7xk9SuperSecret4711"  # a host name comes back lower-cased
FILE_ONLY = "Ünreferenced-file-value-8812"  # in the env file, referenced by no job


def forms(value: str) -> list[str]:
    """The forms the issue names, each of which must never be stored or printed."""
    return [
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        value.lower(),
        value.upper(),
        value.casefold(),
    ]


def leaks(data: bytes, values: list[str]) -> list[str]:
    lowered = data.lower()
    return [
        form
        for value in values
        for form in forms(value)
        if form.encode() in data or form.lower().encode() in lowered
    ]


def test_every_form_is_masked_and_short_values_are_not() -> None:
    redact = Redactor([TOKEN, HOST, "abc"])
    for form in forms(TOKEN) + forms(HOST):
        assert redact(f"<{form}>") == "<***>", form
    assert redact("abc") == "abc"  # shorter than MIN_SECRET_LENGTH: masking it hides too much
    assert MIN_SECRET_LENGTH == 4
    assert redact("cannot resolve host zq7xk9supersecret4711.invalid") == (
        "cannot resolve host ***.invalid"
    )


def test_a_url_reference_is_encoded_for_its_part() -> None:
    env = {"T": "a&b=c?d#e@f/g h", "BASE": "https://api.example.com/v1", "H": "example.org"}
    url, values = expand_url("https://u:${T}@${H}:8443/p/${T}?q=${T}&r=1#${T}", env)
    encoded = quote(env["T"], safe="")
    assert url == f"https://u:{encoded}@example.org:8443/p/{encoded}?q={encoded}&r=1#{encoded}"
    assert env["T"] in values and "example.org" in values
    assert expand_url("${BASE}/hook?k=${T}", env)[0] == f"{env['BASE']}/hook?k={encoded}"
    assert expand_url("https://example.com/", env) == ("https://example.com/", [])


def test_env_file_values_are_secrets_even_unreferenced() -> None:
    env = FireEnvironment({"PATH": "/usr/bin"}, {"K": FILE_ONLY})
    expansion = Expansion(env)
    assert expansion.redact(f"printed {quote(FILE_ONLY)} itself") == "printed *** itself"
    assert expansion.redact("/usr/bin") == "/usr/bin"  # the process environment is not


def test_the_log_filter_masks_messages_and_tracebacks() -> None:
    record = logging.LogRecord("jobctl", logging.ERROR, __file__, 1, "token %s", (TOKEN,), None)
    try:
        raise ValueError(json.dumps(TOKEN))
    except ValueError:
        record.exc_info = sys.exc_info()
    RedactingLogFilter(Redactor([TOKEN])).filter(record)
    text = logging.Formatter().format(record)
    assert "token ***" in text and not leaks(text.encode(), [TOKEN])


def test_no_form_of_a_secret_reaches_the_database_the_log_or_any_output(
    tmp_path: Path, db_path: Path, sink: Sink
) -> None:
    env_file = tmp_path / "secrets.env"
    env_file.write_text(f"TOKEN='{TOKEN}'\nHOST={HOST}\nFILE_ONLY={FILE_ONLY}\n")
    env_file.chmod(0o600)
    echo_path = "/echo/" + quote(TOKEN, safe="&@")  # as sent: & and @ need no escaping there
    echoed = " | ".join([*forms(TOKEN), *forms(FILE_ONLY)])
    sink.replies[echo_path] = Reply(status=500, body=echoed.encode())
    printer = (
        "import json, os, urllib.parse as u; t = os.environ['T']; "
        "print(t, json.dumps(t), u.quote(t), u.quote_plus(t), t.upper())"
    )
    jobs = {
        "echo": ("--url", f"{sink.url}/echo/${{TOKEN}}", "--header", "X-Token: ${TOKEN}"),
        "badhost": ("--url", "http://${HOST}.invalid/", "--timeout", "10s"),
        "printer": ("--exec", f'{sys.executable} -c "{printer}"', "--env", "T=${TOKEN}"),
        "catfile": ("--exec", f"cat {env_file}"),
    }
    for name, args in jobs.items():
        result = run_jobctl(db_path, "add", name, *args, "--manual")
        assert result.returncode == 0, result.stderr

    daemon = DaemonProcess(db_path, "--env-file", str(env_file)).wait_ready()
    try:
        for name in jobs:
            assert run_jobctl(db_path, "run", name, "--queue").returncode == 0
        wait_until(
            lambda: len(query(db_path, "SELECT id FROM runs WHERE finished_at IS NOT NULL")) == 4,
            what="the four runs to finish",
        )
        printed = [
            run_jobctl(db_path, *args)
            for args in (("runs", "--json"), ("runs", "show", "1"), ("runs", "show", "3"))
        ]
        here = run_jobctl(db_path, "run", "printer", "--env-file", str(env_file))
    finally:
        assert daemon.stop() == 0

    received = sink.requests_to(echo_path)  # the structure held: the token stayed in the path
    assert len(received) == 1
    assert received[0].headers["X-Token"].encode("latin-1").decode() == TOKEN
    rows = {row["id"]: row for row in query(db_path, "SELECT * FROM runs")}
    assert "cannot resolve host ***.invalid" in rows[2]["error"]
    assert "Unknown error" not in rows[2]["error"]  # getaddrinfo's codes are not errno values
    assert rows[1]["error"] == "HTTP 500 Internal Server Error (expected 2xx)"
    assert "***" in rows[1]["output"] and "***" in rows[3]["output"]
    assert "***" in rows[4]["output"]
    secrets = [TOKEN, HOST, FILE_ONLY]
    for result in [*printed, here]:
        assert result.stdout and not leaks((result.stdout + result.stderr).encode(), secrets)
    for path in (db_path, Path(f"{db_path}-wal"), daemon.log_path):
        if path.exists():
            assert not leaks(path.read_bytes(), secrets), path


URL_SECRET = "zq7xk9SuperSecret4711é&?#@/"  # in the env file; URL delimiters and a non-ASCII letter


def reencoded_forms(value: str) -> list[str]:
    """What the URL library and other servers make of a secret (the attacks that came back)."""
    quoted = quote(value, safe="")
    return [
        yarl.URL(f"http://h/p/{quoted}").raw_path[3:],  # yarl re-quotes a path segment
        yarl.URL(f"http://h/p?t={quoted}").raw_query_string[2:],  # and a query value
        str(yarl.URL("http://h/landing?t=" + quote(value, safe="&?#@/")))[19:],  # a Location
        json.dumps(value.upper())[1:-1],  # \u00c9: the upper-cased letter's escape
        json.dumps(value)[1:-1].replace("/", "\\/"),  # JSON as PHP writes it
        json.dumps(value.upper())[1:-1].replace("/", "\\/"),
    ]


def test_url_library_forms_upper_case_escapes_and_php_json_are_masked() -> None:
    redact = Redactor([URL_SECRET])
    for form in reencoded_forms(URL_SECRET) + forms(URL_SECRET):
        assert redact(f"<{form}>") == "<***>", form
    assert redact(f"<{json.dumps(URL_SECRET.title())[1:-1]}>") == "<***>"  # any mix of case


def test_final_url_and_every_stored_field_are_masked(
    tmp_path: Path, db_path: Path, sink: Sink
) -> None:
    env_file = tmp_path / "secrets.env"
    env_file.write_text(f"SECRET='{URL_SECRET}'\n")
    env_file.chmod(0o600)
    location = "/landing?t=" + quote(URL_SECRET, safe="&?#@/")  # no reference in the job
    sink.replies["/redirect"] = Reply(status=302, body=b"", headers={"Location": location})
    echoed = " | ".join(
        [json.dumps(URL_SECRET.upper()), json.dumps(URL_SECRET).replace("/", "\\/")]
    )
    sink.replies["/echo"] = Reply(status=200, body=echoed.encode())
    jobs = {
        "reencoded": ("--url", f"{sink.url}/p/${{SECRET}}?t=${{SECRET}}"),
        "redirect": ("--url", f"{sink.url}/redirect"),
        "echo": ("--url", f"{sink.url}/echo"),
    }
    for name, args in jobs.items():
        result = run_jobctl(db_path, "add", name, *args, "--manual")
        assert result.returncode == 0, result.stderr

    daemon = DaemonProcess(db_path, "--env-file", str(env_file)).wait_ready()
    try:
        for name in jobs:
            assert run_jobctl(db_path, "run", name, "--queue").returncode == 0
        wait_until(
            lambda: len(query(db_path, "SELECT id FROM runs WHERE finished_at IS NOT NULL")) == 3,
            what="the three runs to finish",
        )
        printed = [
            run_jobctl(db_path, *args)
            for args in (("runs", "--json"), *(("runs", "show", str(n), "--json") for n in (1, 2)))
        ]
        here = run_jobctl(db_path, "run", "redirect", "--env-file", str(env_file), "--json")
    finally:
        assert daemon.stop() == 0

    assert len(sink.requests_to("/landing")) == 2  # the redirect was followed
    rows = {row["id"]: row for row in query(db_path, "SELECT * FROM runs")}
    assert all(row["status"] == "succeeded" for row in rows.values())
    assert json.loads(rows[2]["details"])["final_url"].endswith("/landing?t=***")
    assert rows[3]["output"] == '"***" | "***"'
    secret_forms = [*forms(URL_SECRET), *reencoded_forms(URL_SECRET)]
    for result in [*printed, here]:
        text = (result.stdout + result.stderr).encode()
        assert result.stdout and not [form for form in secret_forms if form.encode() in text]
    for path in (db_path, Path(f"{db_path}-wal"), daemon.log_path):
        if path.exists():
            data = path.read_bytes()
            assert not [form for form in secret_forms if form.encode() in data], path


def test_the_last_pass_masks_what_an_action_left_and_gives_back_the_rest_as_it_was() -> None:
    """redact_outcome scans an outcome's strings at once and rebuilds it only when a form of a
    secret is left in one: either way, what is stored is what a pass over each string gives."""
    from datetime import UTC, datetime

    from jobctl.actions import Outcome

    now = datetime(2026, 1, 1, tzinfo=UTC)
    expansion = Expansion(FireEnvironment({}, {"K": FILE_ONLY}))

    def outcome(leak: str, step: object) -> Outcome:
        return Outcome(
            "failed",
            now,
            now,
            output=f"out {leak}",
            error="HTTP 500",
            snapshot={"method": "GET", "headers": {"X-A": "a", "X-B": leak}, "body": None},
            details={"steps": [{"text": leak, "n": 1}, step], "ok": True, "ms": 1.5},
        )

    for leak in ("", FILE_ONLY, quote(FILE_ONLY, safe=""), json.dumps(FILE_ONLY)[1:-1]):
        for step in (["x", leak], ("x", leak)):  # Redactor.data gives a tuple back as a list
            expected = outcome(leak, step)
            redactor = expansion.redactor
            for name in ("output", "error", "snapshot", "details"):
                setattr(expected, name, redactor.data(getattr(expected, name)))
            given = outcome(leak, step)
            details = given.details
            got = expansion.redact_outcome(given)
            assert got == expected
            assert repr(got.details) == repr(expected.details)
            if leak:
                assert leak not in repr(got)
            elif isinstance(step, list):  # nothing to mask: nothing rebuilt
                assert got.details is details
