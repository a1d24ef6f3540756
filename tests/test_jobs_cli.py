"""Adding, editing, listing and removing jobs through the command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import BOTH_STORES, Invoke, create_database, dump_database


def job_json(jobctl: Invoke, name: str) -> dict:
    result = jobctl("show", name, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@BOTH_STORES
def test_add_http_job_with_every_trigger(jobctl: Invoke) -> None:
    result = jobctl(
        "add",
        "ping",
        "--url",
        "https://example.com/health",
        "--every",
        "15m",
        "--offset",
        "5m",
        "--tz",
        "Europe/Berlin",
        "--description",
        "health check",
    )
    assert result.exit_code == 0, result.stderr
    assert "added job 'ping'" in result.stdout
    job = job_json(jobctl, "ping")
    assert job["trigger"] == "every"
    assert job["schedule"] == "15m+5m"
    assert job["timezone"] == "Europe/Berlin"
    assert job["action"] == "http"
    assert job["state"] == "enabled"
    assert job["spec"] == {
        "method": "GET",
        "url": "https://example.com/health",
        "headers": {},
        "body": None,
        "expect": "2xx",
    }
    assert job["next_run_at"].endswith(("05:00Z", "20:00Z", "35:00Z", "50:00Z"))
    assert len(job["upcoming"]) == 5
    assert job["policies"] == {
        "timeout": 30.0,
        "retries": 0,
        "backoff": 10.0,
        "overlap": "skip",
        "catchup": "latest",
        "catchup_window": 86400.0,
        "jitter": 0.0,
        "max_failures": None,
        "keep": 1000,
        "keep_for": None,
        "alert_if_no_success": None,
        "notify": [],
    }


def test_add_with_body_defaults_to_post_and_json_body_sets_content_type(jobctl: Invoke) -> None:
    assert jobctl("add", "a", "--url", "http://h/x", "--body", "hello", "--manual").exit_code == 0
    assert job_json(jobctl, "a")["spec"]["method"] == "POST"
    assert (
        jobctl("add", "b", "--url", "http://h/x", "--json-body", '{"k": 1}', "--manual").exit_code
        == 0
    )
    spec = job_json(jobctl, "b")["spec"]
    assert spec["headers"] == {"Content-Type": "application/json"}
    assert spec["body"] == '{"k": 1}'
    assert (
        jobctl(
            "add", "c", "--url", "http://h/x", "--body", "x", "--method", "put", "--manual"
        ).exit_code
        == 0
    )
    assert job_json(jobctl, "c")["spec"]["method"] == "PUT"


def test_body_from_file_and_stdin(jobctl: Invoke, tmp_path: Path) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_text('{"from": "file"}')
    assert (
        jobctl("add", "f", "--url", "http://h/", "--body", f"@{body_file}", "--manual").exit_code
        == 0
    )
    assert job_json(jobctl, "f")["spec"]["body"] == '{"from": "file"}'
    assert (
        jobctl(
            "add", "s", "--url", "http://h/", "--body", "-", "--manual", input="from stdin"
        ).exit_code
        == 0
    )
    assert job_json(jobctl, "s")["spec"]["body"] == "from stdin"


@BOTH_STORES
def test_add_exec_job_with_policies(jobctl: Invoke, tmp_path: Path) -> None:
    result = jobctl(
        "add",
        "report",
        "--exec",
        "make report",
        "--cwd",
        str(tmp_path),
        "--env",
        "A=1",
        "--env",
        "B=two",
        "--cron",
        "0 9 * * 1-5",
        "--tz",
        "UTC",
        "--timeout",
        "5m",
        "--retries",
        "3",
        "--backoff",
        "30s",
        "--overlap",
        "queue",
        "--catchup",
        "all",
        "--catchup-window",
        "2h",
        "--jitter",
        "500ms",
        "--max-failures",
        "5",
        "--keep",
        "50",
        "--keep-for",
        "30d",
    )
    assert result.exit_code == 0, result.stderr
    job = job_json(jobctl, "report")
    assert job["spec"] == {
        "command": "make report",
        "cwd": str(tmp_path),
        "env": {"A": "1", "B": "two"},
        "shell": True,
    }
    assert job["policies"] == {
        "timeout": 300.0,
        "retries": 3,
        "backoff": 30.0,
        "overlap": "queue",
        "catchup": "all",
        "catchup_window": 7200.0,
        "jitter": 0.5,
        "max_failures": 5,
        "keep": 50,
        "keep_for": 2592000.0,
        "alert_if_no_success": None,
        "notify": [],
    }
    assert job["policies"]["timeout"] == 300.0


def test_default_timeout_follows_the_action_kind(jobctl: Invoke) -> None:
    jobctl("add", "e", "--exec", "true", "--manual")
    assert job_json(jobctl, "e")["policies"]["timeout"] == 3600.0
    jobctl("edit", "e", "--url", "http://h/")
    assert job_json(jobctl, "e")["policies"]["timeout"] == 30.0


@BOTH_STORES
def test_at_trigger_stores_resolved_time_with_offset(jobctl: Invoke) -> None:
    result = jobctl(
        "add", "once", "--exec", "true", "--at", "2099-07-01 09:30", "--tz", "Europe/Berlin"
    )
    assert result.exit_code == 0, result.stderr
    job = job_json(jobctl, "once")
    assert job["trigger"] == "once"
    assert job["schedule"] == "2099-07-01T09:30:00+02:00"
    assert job["next_run_at"] == "2099-07-01T07:30:00Z"
    assert job["upcoming"] == ["2099-07-01T07:30:00Z"]


@BOTH_STORES
def test_manual_job_has_no_next_run(jobctl: Invoke) -> None:
    jobctl("add", "m", "--exec", "true", "--manual")
    job = job_json(jobctl, "m")
    assert job["trigger"] == "manual"
    assert job["schedule"] is None
    assert job["next_run_at"] is None


@BOTH_STORES
def test_cron_presets_and_seconds_field(jobctl: Invoke) -> None:
    assert jobctl("add", "d", "--exec", "true", "--cron", "@daily", "--tz", "UTC").exit_code == 0
    assert job_json(jobctl, "d")["next_run_at"].endswith("T00:00:00Z")
    assert jobctl("add", "s", "--exec", "true", "--cron", "*/10 * * * * *").exit_code == 0
    upcoming = job_json(jobctl, "s")["upcoming"]
    assert all(moment[17:19] in {"00", "10", "20", "30", "40", "50"} for moment in upcoming)


def test_secrets_are_stored_as_written_and_redacted_in_show(jobctl: Invoke, db_path: Path) -> None:
    result = jobctl(
        "add",
        "s",
        "--url",
        "https://bob:hunter2@example.com/x?api_key=k123",
        "--header",
        "Authorization: Bearer literal-token",
        "--header",
        "X-Api-Key: ${API_KEY}",
        "--header",
        "Accept: text/plain",
        "--every",
        "1h",
    )
    assert result.exit_code == 0, result.stderr
    shown = jobctl("show", "s").stdout + jobctl("show", "s", "--json").stdout
    shown += jobctl("list").stdout + jobctl("list", "--json").stdout
    for secret in ("hunter2", "k123", "literal-token"):
        assert secret not in shown
    spec = job_json(jobctl, "s")["spec"]
    assert spec["headers"] == {
        "Authorization": "***",
        "X-Api-Key": "${API_KEY}",
        "Accept": "text/plain",
    }
    assert spec["url"] == "https://bob:***@example.com/x?api_key=***"
    stored = sqlite3.connect(db_path).execute("SELECT spec FROM jobs").fetchone()[0]
    assert "hunter2" in stored and "${API_KEY}" in stored


@BOTH_STORES
def test_edit_replaces_given_fields_only(jobctl: Invoke) -> None:
    jobctl(
        "add",
        "j",
        "--url",
        "http://h/",
        "--header",
        "A: 1",
        "--header",
        "B: 2",
        "--every",
        "5m",
        "--description",
        "old",
        "--retries",
        "2",
    )
    before = job_json(jobctl, "j")
    result = jobctl("edit", "j", "--header", "C: 3", "--description", "")
    assert result.exit_code == 0, result.stderr
    after = job_json(jobctl, "j")
    assert after["spec"]["headers"] == {"C": "3"}
    assert after["description"] == ""
    assert after["policies"]["retries"] == 2
    assert after["schedule"] == before["schedule"]
    assert after["next_run_at"] == before["next_run_at"]
    jobctl("edit", "j", "--retries", "")
    assert job_json(jobctl, "j")["policies"]["retries"] == 0


@BOTH_STORES
def test_edit_changes_trigger_and_action_kinds(jobctl: Invoke) -> None:
    jobctl("add", "j", "--url", "http://h/", "--every", "5m")
    assert jobctl("edit", "j", "--exec", "echo hi", "--cron", "0 0 * * *").exit_code == 0
    job = job_json(jobctl, "j")
    assert (job["action"], job["trigger"]) == ("exec", "cron")
    assert job["spec"] == {"command": "echo hi", "cwd": None, "env": {}, "shell": True}
    assert jobctl("edit", "j", "--offset", "1m").exit_code == 2


def test_edit_offset_alone_on_an_every_job(jobctl: Invoke) -> None:
    jobctl("add", "j", "--url", "http://h/", "--every", "15m")
    assert jobctl("edit", "j", "--offset", "5m").exit_code == 0
    assert job_json(jobctl, "j")["schedule"] == "15m+5m"
    assert jobctl("edit", "j", "--every", "30m").exit_code == 0
    assert job_json(jobctl, "j")["schedule"] == "30m+5m"


def test_edit_every_keeps_a_millisecond_offset(jobctl: Invoke) -> None:
    assert jobctl("add", "x", "--exec", "true", "--every", "1s", "--offset", "60ms").exit_code == 0
    result = jobctl("edit", "x", "--every", "2s")
    assert result.exit_code == 0, result.stderr
    assert job_json(jobctl, "x")["schedule"] == "2s+60ms"
    # the kept offset is still checked against the new interval
    jobctl("edit", "x", "--every", "10s", "--offset", "5s")
    result = jobctl("edit", "x", "--every", "5s")
    assert result.exit_code == 2
    assert "--offset 5s is not shorter than --every 5s" in result.stderr
    assert job_json(jobctl, "x")["schedule"] == "10s+5s"


def test_edit_empty_offset_clears_it(jobctl: Invoke) -> None:
    jobctl("add", "j", "--exec", "true", "--every", "15m", "--offset", "3s")
    result = jobctl("edit", "j", "--offset", "")
    assert result.exit_code == 0, result.stderr
    assert job_json(jobctl, "j")["schedule"] == "15m"
    jobctl("edit", "j", "--offset", "5m")
    assert jobctl("edit", "j", "--every", "10m", "--offset", "").exit_code == 0
    assert job_json(jobctl, "j")["schedule"] == "10m"


@BOTH_STORES
def test_edit_refuses_an_empty_name(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "base", "--exec", "true", "--manual")
    before = dump_database(db_path)
    result = jobctl("edit", "base", "--name", "")
    assert result.exit_code == 2
    assert (
        result.stderr.startswith("jobctl: invalid job name ''") and "updated" not in result.stdout
    )
    assert dump_database(db_path) == before


def test_rename_keeps_history(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "old", "--exec", "true", "--manual")
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, created_at) "
        "SELECT id, 'manual', 'succeeded', 'x', 'x' FROM jobs"
    )
    conn.commit()
    assert jobctl("edit", "old", "--name", "new").exit_code == 0
    assert jobctl("show", "old").exit_code == 3
    assert (
        conn.execute(
            "SELECT count(*) FROM runs JOIN jobs ON jobs.id = runs.job_id WHERE jobs.name = 'new'"
        ).fetchone()[0]
        == 1
    )


@BOTH_STORES
def test_pause_and_resume(jobctl: Invoke) -> None:
    jobctl("add", "a", "--exec", "true", "--every", "1m")
    jobctl("add", "b", "--exec", "true", "--every", "1m")
    assert jobctl("pause", "a", "b").exit_code == 0
    for name in ("a", "b"):
        job = job_json(jobctl, name)
        assert job["state"] == "paused"
        assert job["next_run_at"] is None
        assert job["upcoming"] == []
    assert jobctl("resume", "a").exit_code == 0
    assert job_json(jobctl, "a")["state"] == "enabled"
    assert job_json(jobctl, "a")["next_run_at"] is not None
    assert job_json(jobctl, "b")["state"] == "paused"


@BOTH_STORES
def test_commands_naming_several_jobs_change_none_if_one_is_unknown(
    jobctl: Invoke, db_path: Path
) -> None:
    jobctl("add", "a", "--exec", "true", "--every", "1m")
    before = dump_database(db_path)
    for command in ("rm", "pause"):
        result = jobctl(command, "a", "nope")
        assert result.exit_code == 3
        assert "no job named 'nope'" in result.stderr
        assert dump_database(db_path) == before


def test_rm_removes_job_and_history(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "a", "--exec", "true", "--manual")
    jobctl("add", "b", "--exec", "true", "--manual")
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, created_at) "
        "SELECT id, 'manual', 'succeeded', 'x', 'x' FROM jobs WHERE name = 'a'"
    )
    conn.commit()
    assert jobctl("rm", "a").exit_code == 0
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert [j["name"] for j in json.loads(jobctl("list", "--json").stdout)] == ["b"]


def test_rm_refuses_a_job_with_a_run_in_flight_unless_forced(jobctl: Invoke, db_path: Path) -> None:
    jobctl("add", "a", "--exec", "true", "--manual")
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO runs (job_id, trigger, status, scheduled_for, created_at) "
        "SELECT id, 'manual', 'running', 'x', 'x' FROM jobs"
    )
    conn.commit()
    result = jobctl("rm", "a")
    assert result.exit_code == 1
    assert "in flight" in result.stderr
    assert jobctl("rm", "a", "--force").exit_code == 0


@BOTH_STORES
def test_list_table_and_json(jobctl: Invoke, db_path: Path) -> None:
    create_database(db_path)
    assert jobctl("list", "--json").stdout.strip() == "[]"
    jobctl("add", "web", "--url", "https://example.com/", "--cron", "*/5 * * * *")
    jobctl("add", "script", "--exec", "backup.sh", "--manual")
    table = jobctl("list").stdout
    lines = table.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATE",
        "SCHEDULE",
        "ACTION",
        "NEXT",
        "LAST",
        "STATUS",
        "OK",
        "RECENT",
    ]
    assert lines[1].startswith("script") and "manual" in lines[1]
    assert "cron */5 * * * *" in lines[2] and "GET https://example.com/" in lines[2]
    assert "in " in lines[2]
    listed = json.loads(jobctl("list", "--json").stdout)
    contract = {
        "name",
        "description",
        "state",
        "action",
        "trigger",
        "schedule",
        "timezone",
        "next_run_at",
        "last_run_at",
        "last_status",
        "runs_total",
        "runs_succeeded",
        "runs_failed",
        "runs_skipped",
        "runs_missed",
        "spec",
        "policies",
    }
    assert all(contract <= set(job) for job in listed)


@BOTH_STORES
def test_next_of_a_paused_job_says_it_is_paused(jobctl: Invoke) -> None:
    jobctl("add", "j", "--exec", "true", "--every", "1h")
    assert "paused" not in jobctl("next", "j", "-n", "1").stderr
    jobctl("pause", "j")
    result = jobctl("next", "j", "-n", "2", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2  # the JSON stays a list
    assert result.stderr == (
        "job 'j' is paused: it would fire at these times once resumed (`jobctl resume j`)\n"
    )
    assert "is paused" in jobctl("next", "j", "-n", "1").stderr


@BOTH_STORES
def test_next_for_a_job_and_for_expressions(jobctl: Invoke) -> None:
    jobctl("add", "j", "--exec", "true", "--cron", "30 2 * * *", "--tz", "America/New_York")
    result = jobctl("next", "j", "-n", "2", "--after", "2026-03-07 12:00", "--json")
    assert json.loads(result.stdout) == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    text = jobctl("next", "j", "-n", "1", "--after", "2026-03-07 12:00").stdout
    assert "2026-03-08 03:00:00 -0400" in text and "America/New_York" in text
    result = jobctl(
        "next",
        "--every",
        "15m",
        "--offset",
        "5m",
        "--tz",
        "Asia/Kolkata",
        "--after",
        "2026-01-01T00:00:00Z",
        "-n",
        "2",
        "--json",
    )
    assert json.loads(result.stdout) == ["2026-01-01T00:05:00Z", "2026-01-01T00:20:00Z"]
    result = jobctl(
        "next",
        "--cron",
        "0 1 * * *",
        "--tz",
        "Europe/Berlin",
        "-n",
        "1",
        "--after",
        "2026-10-25T00:30:00+02:00",
        "--json",
    )
    assert json.loads(result.stdout) == ["2026-10-24T23:00:00Z"]


def test_db_option_before_and_after_the_subcommand(jobctl: Invoke, tmp_path: Path) -> None:
    first, second = tmp_path / "one.db", tmp_path / "two.db"
    jobctl("--db", str(first), "add", "a", "--exec", "true", "--manual")
    jobctl("add", "b", "--exec", "true", "--manual", "--db", str(second))
    jobctl("--db", str(first), "add", "c", "--exec", "true", "--manual", "--db", str(second))

    def names(path: Path) -> list[str]:
        return [j["name"] for j in json.loads(jobctl("list", "--json", "--db", str(path)).stdout)]

    assert names(first) == ["a"]
    assert names(second) == ["b", "c"]


BAD_INPUTS = [
    # (arguments, exit code, words the message must contain)
    (["add", "x", "--url", "http://h/", "--cron", "61 * * * *"], 2, "minute"),
    (["add", "x", "--url", "http://h/", "--cron", "0 0 30 2 *"], 2, "never"),
    (["add", "x", "--url", "http://h/", "--cron", "0 0 ? * *"], 2, "cron"),
    (["add", "x", "--url", "http://h/", "--cron", "@reboot"], 2, "@reboot"),
    (["add", "x", "--url", "http://h/", "--every", "10x"], 2, "interval"),
    (["add", "x", "--url", "http://h/", "--every", "500ms"], 2, "interval"),
    (["add", "x", "--url", "http://h/", "--every", "15m", "--offset", "15m"], 2, "offset"),
    (["add", "x", "--url", "http://h/", "--at", "2001-01-01 00:00"], 2, "passed"),
    (["add", "x", "--url", "http://h/", "--at", "tomorrow-ish"], 2, "--at"),
    (
        ["add", "x", "--url", "http://h/", "--at", "2099-03-29 02:30", "--tz", "Europe/Berlin"],
        2,
        "does not exist",
    ),
    (["add", "x", "--url", "http://h/", "--every", "1m", "--tz", "Mars/Olympus"], 2, "zone"),
    (["add", "x", "--url", "not a url", "--every", "1m"], 2, "--url"),
    (["add", "x", "--url", "ftp://h/", "--every", "1m"], 2, "http"),
    (["add", "x", "--url", "http://h:99999/", "--every", "1m"], 2, "--url"),
    (["add", "x", "--url", "http://h/", "--header", "NoColon", "--every", "1m"], 2, "--header"),
    (["add", "x", "--url", "http://h/", "--json-body", "{bad", "--every", "1m"], 2, "json"),
    (
        ["add", "x", "--url", "http://h/", "--body", "a", "--json-body", "{}", "--every", "1m"],
        2,
        "combined",
    ),
    (["add", "x", "--url", "http://h/", "--expect", "abc", "--every", "1m"], 2, "--expect"),
    (["add", "x", "--url", "http://h/", "--method", "FETCH", "--every", "1m"], 2, "--method"),
    (["add", "x", "--url", "http://h/", "--timeout", "soon", "--every", "1m"], 2, "--timeout"),
    (["add", "x", "--url", "http://h/", "--retries", "-1", "--every", "1m"], 2, "--retries"),
    (["add", "x", "--url", "http://h/", "--overlap", "maybe", "--every", "1m"], 2, "overlap"),
    (["add", "Bad_Name", "--url", "http://h/", "--every", "1m"], 2, "name"),
    (["add", "list", "--url", "http://h/", "--every", "1m"], 2, "name"),
    (["add", "rerun", "--url", "http://h/", "--every", "1m"], 2, "subcommand"),
    (["add", "cancel", "--url", "http://h/", "--every", "1m"], 2, "subcommand"),
    (["add", "x" * 65, "--url", "http://h/", "--every", "1m"], 2, "name"),
    (["add", "x", "--url", "http://h/", "--exec", "true", "--every", "1m"], 2, "combined"),
    (["add", "x", "--url", "http://h/", "--every", "1m", "--manual"], 2, "combined"),
    (["add", "x", "--url", "http://h/"], 2, "trigger"),
    (["add", "x", "--every", "1m"], 2, "action"),
    (["add", "x", "--exec", "echo 'unbalanced", "--every", "1m"], 2, "--exec"),
    (["add", "x", "--exec", "true", "--env", "no-equals", "--every", "1m"], 2, "--env"),
    (["add", "x", "--exec", "true", "--method", "POST", "--every", "1m"], 2, "http"),
    (["add", "x", "--url", "http://h/", "--cwd", "/tmp", "--every", "1m"], 2, "exec"),
    (
        ["add", "x", "--url", "http://h/", "--body", "@/nonexistent/file", "--every", "1m"],
        2,
        "cannot read",
    ),
    (["add", "x", "--agent", "nobody", "--prompt", "hi", "--every", "1m"], 3, "agent"),
    (["add", "dup", "--url", "http://h/", "--every", "1m"], 2, "already exists"),
    (["edit", "nope", "--every", "1m"], 3, "nope"),
    (["edit", "dup"], 2, "nothing to change"),
    (["edit", "dup", "--name", "Bad Name"], 2, "name"),
    (["edit", "dup", "--cron", "* * *"], 2, "cron"),
    (["show", "nope"], 3, "nope"),
    (["rm", "nope"], 3, "nope"),
    (["resume", "nope"], 3, "nope"),
    (["next", "nope"], 3, "nope"),
    (["next"], 2, "NAME"),
    (["next", "--cron", "0 0 31 4 *"], 2, "never"),
    (["next", "--every", "1m", "--after", "yesterday"], 2, "--after"),
]


@pytest.mark.parametrize(
    ("args", "code", "words"), BAD_INPUTS, ids=[" ".join(case[0])[:60] for case in BAD_INPUTS]
)
def test_bad_input_is_refused_cleanly(
    jobctl: Invoke, db_path: Path, args: list[str], code: int, words: str
) -> None:
    jobctl("add", "dup", "--url", "http://h/", "--every", "1m")
    before = dump_database(db_path)
    result = jobctl(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words.lower() in lines[0].lower()
    assert result.stdout == ""
    assert dump_database(db_path) == before


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (["--exec", "true", "--env", "A=1"], ["command", "cwd", "env", "shell"]),
        (
            ["--url", "http://h/", "--header", "A: b", "--forward-payload"],
            ["url", "method", "headers", "body", "expect", "forward_payload"],
        ),
    ],
)
def test_spec_keys_have_one_order_everywhere(
    jobctl: Invoke, args: list[str], keys: list[str]
) -> None:
    added = jobctl("add", "j", *args, "--manual", "--json")
    assert added.exit_code == 0, added.stderr
    edited = jobctl("edit", "j", "--description", "d", "--json")
    listed = json.loads(jobctl("list", "--json").stdout)[0]
    exported = json.loads(jobctl("export", "--format", "json").stdout)["jobs"][0]
    assert list(json.loads(added.stdout)["spec"]) == keys
    assert list(json.loads(edited.stdout)["spec"]) == keys
    assert list(listed["spec"]) == keys
    assert list(job_json(jobctl, "j")["spec"]) == keys
    assert list(exported["spec"]) == [key for key in keys if key in exported["spec"]]


@BOTH_STORES
def test_show_says_how_an_exec_command_runs(jobctl: Invoke) -> None:
    jobctl("add", "sh", "--exec", "echo a; exit 3", "--manual")
    jobctl("add", "direct", "--exec", "echo a", "--no-shell", "--manual")
    shelled = jobctl("show", "sh").stdout
    assert "shell:      /bin/sh -c" in shelled
    assert "shell:      none (the words are run directly)" in jobctl("show", "direct").stdout
    assert "False" not in shelled and "True" not in shelled


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("echo 'unbalanced", (), "Unterminated quoted string"),
        ("echo 'unbalanced", ("--no-shell",), "No closing quotation"),
        ("echo a\\", ("--no-shell",), "No escaped character"),
    ],
)
def test_exec_with_unclosed_quotes_is_refused(
    jobctl: Invoke, db_path: Path, command: str, extra: tuple[str, ...], message: str
) -> None:
    jobctl("add", "keep", "--exec", "true", "--manual")
    before = dump_database(db_path)
    result = jobctl("add", "x", "--exec", command, *extra, "--manual")
    assert result.exit_code == 2
    assert result.stderr.startswith("jobctl: invalid --exec") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert dump_database(db_path) == before


@pytest.mark.parametrize(
    "command",
    [
        'echo "$(echo "it\'s")"',  # a new quoting context inside $( )
        "echo done # it's fine",
        "cat <<EOF\nit's\nEOF",
        "echo a\\",
    ],
)
def test_exec_shell_lines_that_sh_accepts_are_accepted(jobctl: Invoke, command: str) -> None:
    result = jobctl("add", "x", "--exec", command, "--manual")
    assert result.exit_code == 0, result.stderr


def test_list_gives_back_the_objects_it_froze(jobctl: Invoke) -> None:
    import gc

    # `list` freezes what exists out of the collector's way; a caller in the same process
    # (these tests, a long-lived host) gets a collector that sees everything again.
    assert jobctl("add", "a", "--url", "http://h/x", "--every", "5m").exit_code == 0
    for args in (("list",), ("list", "--json")):
        assert jobctl(*args).exit_code == 0
        assert gc.get_freeze_count() == 0
