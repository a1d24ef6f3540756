"""Jobs as a file: `jobctl export` and `jobctl apply`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BOTH_STORES, Invoke, create_database, dump_database

FUTURE = (datetime.now(UTC) + timedelta(days=400)).strftime("%Y-%m-%d 10:00")


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    return result


def add_agent(db_path: Path, name: str = "helper") -> None:
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO agents (name, kind, config, created_at, updated_at) "
            "VALUES (?, 'command', '{\"command\": \"cat\"}', '2026-01-01T00:00:00.000000Z', "
            "'2026-01-01T00:00:00.000000Z')",
            (name,),
        )
    conn.close()


def add_every_kind(jobctl: Invoke, db_path: Path) -> None:
    """One job of each action and trigger kind, with policies, headers and secrets."""
    ok(
        jobctl(
            "add",
            "backup",
            "--url",
            "https://example.com/backup",
            "--method",
            "POST",
            "--cron",
            "0 3 * * *",
            "--tz",
            "Europe/Berlin",
            "--description",
            "nightly backup",
            "--header",
            "Authorization: Bearer ${TOKEN}",
            "--header",
            "X-Trace: yes",
            "--timeout",
            "90s",
            "--retries",
            "3",
            "--backoff",
            "250ms",
            "--overlap",
            "queue",
            "--catchup",
            "all",
            "--catchup-window",
            "2h",
            "--jitter",
            "5s",
            "--max-failures",
            "4",
            "--keep",
            "50",
            "--keep-for",
            "7d",
        )
    )
    ok(
        jobctl(
            "add",
            "sync",
            "--url",
            "https://example.com/sync",
            "--every",
            "15m",
            "--offset",
            "5m",
            "--json-body",
            '{"full": true}',
            "--method",
            "PUT",
            "--expect",
            "200,204",
        )
    )
    ok(
        jobctl(
            "add",
            "launch",
            "--url",
            "https://example.com/launch",
            "--at",
            FUTURE,
            "--body",
            "line one\nline two\r\nline three",
        )
    )
    ok(jobctl("add", "secs", "--url", "https://example.com/s", "--cron", "*/10 * * * * *"))
    add_agent(db_path)
    ok(
        jobctl(
            "add",
            "summary",
            "--agent",
            "helper",
            "--prompt",
            "Summarise {payload}\n\nThanks",
            "--manual",
        )
    )
    ok(
        jobctl(
            "add",
            "report",
            "--exec",
            "make report | tee out.txt",
            "--shell",
            "--cwd",
            "/tmp",
            "--env",
            "LEVEL=2",
            "--env",
            "API_KEY=${API_KEY}",
            "--every",
            "1h",
            "--paused",
        )
    )
    ok(jobctl("add", "tidy", "--exec", "rm -f /tmp/x", "--manual", "--tz", "Asia/Tokyo"))


def definitions(jobctl: Invoke, db: Path) -> dict[str, dict[str, Any]]:
    keys = ("description", "state", "action", "trigger", "schedule", "timezone", "policies")
    jobs = json.loads(ok(jobctl("list", "--json", "--db", str(db))).stdout)
    return {job["name"]: {key: job[key] for key in keys} for job in jobs}


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_export_apply_round_trip(jobctl: Invoke, db_path: Path, tmp_path: Path, fmt: str) -> None:
    add_every_kind(jobctl, db_path)
    exported = ok(jobctl("export", "--format", fmt)).stdout
    document = tmp_path / f"jobs.{fmt}"
    document.write_text(exported)

    other = tmp_path / "other.db"  # a fresh database: the agent comes from the file too
    applied = ok(jobctl("apply", "-f", str(document), "--db", str(other)))
    assert applied.stdout.splitlines() == [
        "+ agent helper",
        "+ backup",
        "+ launch",
        "+ report",
        "+ secs",
        "+ summary",
        "+ sync",
        "+ tidy",
        "applied: 7 added, 0 changed, 0 removed, 0 unchanged; "
        "agents: 1 added, 0 changed, 0 removed, 0 unchanged",
    ]
    assert ok(jobctl("export", "--format", fmt, "--db", str(other))).stdout == exported
    assert definitions(jobctl, other) == definitions(jobctl, db_path)
    assert definitions(jobctl, other)["report"]["state"] == "paused"


def test_export_document_shape(jobctl: Invoke, db_path: Path) -> None:
    add_every_kind(jobctl, db_path)
    import tomllib

    doc = tomllib.loads(ok(jobctl("export", "backup", "report", "tidy")).stdout)
    assert doc["version"] == 1
    backup, report, tidy = doc["jobs"]
    assert backup == {
        "name": "backup",
        "description": "nightly backup",
        "state": "enabled",
        "action": "http",
        "trigger": "cron",
        "schedule": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "spec": {
            "url": "https://example.com/backup",
            "method": "POST",
            "headers": {"Authorization": "Bearer ${TOKEN}", "X-Trace": "yes"},
            "expect": "2xx",
        },
        "policies": {
            "timeout": "1m30s",
            "retries": 3,
            "backoff": "250ms",
            "overlap": "queue",
            "catchup": "all",
            "catchup_window": "2h",
            "jitter": "5s",
            "max_failures": 4,
            "keep": 50,
            "keep_for": "7d",
        },
    }
    assert report["state"] == "paused"
    assert report["spec"] == {
        "command": "make report | tee out.txt",
        "cwd": "/tmp",
        "env": {"API_KEY": "${API_KEY}", "LEVEL": "2"},
        "shell": True,
    }
    assert "schedule" not in tidy and "policies" not in tidy


def test_second_apply_changes_nothing(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    add_every_kind(jobctl, db_path)
    document = tmp_path / "jobs.toml"
    document.write_text(ok(jobctl("export")).stdout)
    before = dump_database(db_path)
    result = ok(jobctl("apply", "-f", str(document)))
    assert result.stdout == "nothing to change: 7 jobs and 1 agent unchanged\n"
    assert dump_database(db_path) == before
    names = json.loads(ok(jobctl("apply", "-f", str(document), "--json")).stdout)
    assert names["added"] == names["changed"] == names["removed"] == []
    assert len(names["unchanged"]) == 7


@BOTH_STORES
def test_hand_written_file_is_idempotent(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    """Equal after validation is unchanged, even when the text differs from export's."""
    document = tmp_path / "jobs.toml"
    document.write_text(f"""
[[jobs]]
name = "ping"
action = "http"
trigger = "once"
schedule = "{FUTURE}"
timezone = "Europe/Berlin"
spec = {{ url = " https://example.com/ ", headers = {{ Accept = " text/plain " }} }}
policies = {{ timeout = 90, overlap = "ALLOW" }}

[[jobs]]
name = "toml-time"
action = "exec"
trigger = "once"
schedule = 2031-01-02T03:04:05
timezone = "Asia/Tokyo"
spec.command = "true"
""")
    assert ok(jobctl("apply", "-f", str(document))).stdout.splitlines()[:2] == [
        "+ ping",
        "+ toml-time",
    ]
    assert ok(jobctl("apply", "-f", str(document))).stdout.startswith("nothing to change")
    exported = ok(jobctl("export")).stdout
    assert 'timeout = "1m30s"' in exported and 'overlap = "allow"' in exported
    assert 'schedule = "2031-01-02T03:04:05+09:00"' in exported


def test_durations_that_text_cannot_hold_are_written_as_numbers(
    jobctl: Invoke, tmp_path: Path
) -> None:
    entry = http_entry("a", policies={"timeout": 1.5, "jitter": "1s250ms", "backoff": 0.0001})
    ok(jobctl("apply", "-f", str(write_json(tmp_path / "a.json", [entry]))))
    exported = ok(jobctl("export", "--json")).stdout
    assert json.loads(exported)["jobs"][0]["policies"] == {
        "timeout": 1.5,
        "backoff": 0.0001,
        "jitter": "1s250ms",
    }
    (tmp_path / "b.json").write_text(exported)
    assert ok(jobctl("apply", "-f", str(tmp_path / "b.json"))).stdout.startswith("nothing")


def write_json(path: Path, jobs: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"version": 1, "jobs": jobs}))
    return path


def http_entry(name: str, **extra: Any) -> dict[str, Any]:
    entry = {
        "name": name,
        "action": "http",
        "trigger": "every",
        "schedule": "5m",
        "timezone": "UTC",
        "spec": {"url": f"https://example.com/{name}"},
    }
    entry.update(extra)
    return entry


def test_changed_job_keeps_id_counters_and_next_run(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    document = write_json(tmp_path / "jobs.json", [http_entry("a"), http_entry("b")])
    ok(jobctl("apply", "-f", str(document)))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE jobs SET runs_total = 5")
    before = dict(conn.execute("SELECT name, next_run_at FROM jobs").fetchall())
    ids = dict(conn.execute("SELECT name, id FROM jobs").fetchall())

    write_json(
        document,
        [http_entry("a", description="now described"), http_entry("b", schedule="5m+150s")],
    )
    result = ok(jobctl("apply", "-f", str(document)))
    assert result.stdout.splitlines() == [
        "~ a",
        "~ b",
        "applied: 0 added, 2 changed, 0 removed, 0 unchanged",
    ]
    rows = {
        row[0]: row[1:]
        for row in conn.execute("SELECT name, id, runs_total, next_run_at, description FROM jobs")
    }
    conn.close()
    assert rows["a"] == (ids["a"], 5, before["a"], "now described")
    assert rows["b"][:2] == (ids["b"], 5)
    # A new schedule has a new next run: 5m+150s is always 2m30s away from the 5m slots.
    assert rows["b"][2] != before["b"]


@BOTH_STORES
def test_dry_run_prints_the_plan_and_writes_nothing(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    ok(
        jobctl(
            "apply",
            "-f",
            str(
                write_json(
                    tmp_path / "a.json",
                    [http_entry("keep"), http_entry("edit"), http_entry("drop")],
                )
            ),
        )
    )
    document = write_json(
        tmp_path / "b.json",
        [http_entry("keep"), http_entry("edit", schedule="10m"), http_entry("new")],
    )
    before = dump_database(db_path)
    result = ok(jobctl("apply", "-f", str(document), "--dry-run", "--prune"))
    assert result.stdout.splitlines() == [
        "would + new",
        "would ~ edit",
        "would - drop",
        "would apply: 1 added, 1 changed, 1 removed, 1 unchanged",
    ]
    assert dump_database(db_path) == before
    plan = json.loads(ok(jobctl("apply", "-f", str(document), "--dry-run", "--json")).stdout)
    assert plan == {
        "added": ["new"],
        "changed": ["edit"],
        "removed": [],
        "unchanged": ["keep"],
        "agents": {"added": [], "changed": [], "removed": [], "unchanged": []},
        "teams": {"added": [], "changed": [], "unchanged": []},
        "dry_run": True,
    }
    assert dump_database(db_path) == before


@BOTH_STORES
def test_prune_removes_only_with_the_flag(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    ok(
        jobctl(
            "apply", "-f", str(write_json(tmp_path / "a.json", [http_entry("a"), http_entry("b")]))
        )
    )
    document = write_json(tmp_path / "b.json", [http_entry("a")])
    result = ok(jobctl("apply", "-f", str(document)))
    assert result.stdout == "nothing to change: 1 job unchanged\n"
    assert "1 job in the database is not in the file" in result.stderr
    assert [job["name"] for job in json.loads(jobctl("list", "--json").stdout)] == ["a", "b"]

    result = ok(jobctl("apply", "-f", str(document), "--prune"))
    assert result.stdout.splitlines() == [
        "- b",
        "applied: 0 added, 0 changed, 1 removed, 1 unchanged",
    ]
    assert [job["name"] for job in json.loads(jobctl("list", "--json").stdout)] == ["a"]


def refused(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return str(lines[0])


@BOTH_STORES
def test_bad_entry_changes_nothing_and_is_named(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    ok(jobctl("apply", "-f", str(write_json(tmp_path / "a.json", [http_entry("a")]))))
    before = dump_database(db_path)
    document = write_json(
        tmp_path / "b.json",
        [
            http_entry("a", description="changed"),
            http_entry("b"),
            http_entry("nightly", trigger="cron", schedule="0 25 * * *"),
            http_entry("c"),
        ],
    )
    message = refused(jobctl("apply", "-f", str(document), "--prune"))
    assert message.startswith("jobctl: jobs[2] ('nightly'): invalid cron expression '0 25 * * *'")
    assert dump_database(db_path) == before


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            http_entry("a", shedule="5m"),
            "jobs[0] ('a'): unknown key 'shedule'; did you mean 'schedule'?",
        ),
        (
            http_entry("a", spec={"url": "https://h/", "header": {}}),
            "jobs[0] ('a'): unknown http spec key 'header'; did you mean 'headers'?",
        ),
        (
            http_entry("a", policies={"retry": 2}),
            "jobs[0] ('a'): unknown policy 'retry'; did you mean 'retries'?",
        ),
        (
            http_entry("a", spec={"url": "https://h/", "headers": {"X": 1}}),
            "jobs[0] ('a'): spec.headers must be a table of text values",
        ),
        (http_entry("a", trigger="manual"), "jobs[0] ('a'): a manual trigger takes no schedule"),
        (http_entry("a", action="ftp"), "jobs[0] ('a'): invalid action 'ftp': choose one of"),
        (http_entry("a", spec={}), "jobs[0] ('a'): an http job needs spec.url"),
        (http_entry("a", policies={"retries": "many"}), "jobs[0] ('a'): invalid --retries 'many'"),
        (
            http_entry("Bad Name", spec={"url": "https://h/"}),
            "jobs[0] ('Bad Name'): invalid job name",
        ),
        ({"name": None, "action": "nope", "trigger": "manual"}, "jobs[0]: invalid action 'nope'"),
        ({"name": "a", "trigger": "manual"}, "jobs[0] ('a'): missing action: choose one of"),
    ],
)
def test_entry_errors(jobctl: Invoke, tmp_path: Path, entry: dict[str, Any], expected: str) -> None:
    message = refused(jobctl("apply", "-f", str(write_json(tmp_path / "j.json", [entry]))))
    assert message.startswith(f"jobctl: {expected}"), message


def test_duplicate_names_and_document_errors(jobctl: Invoke, tmp_path: Path) -> None:
    document = write_json(tmp_path / "j.json", [http_entry("a"), http_entry("b"), http_entry("a")])
    assert refused(jobctl("apply", "-f", str(document))) == (
        "jobctl: jobs[2] ('a'): duplicate name: jobs[0] has it too"
    )
    document.write_text('{"version": 1, "version": 1, "jobs": []}')
    assert "duplicate key 'version'" in refused(jobctl("apply", "-f", str(document)))
    document = tmp_path / "j.toml"
    document.write_text("version = 2\n")
    assert refused(jobctl("apply", "-f", str(document))) == (
        "jobctl: unsupported version 2: this jobctl reads version 1"
    )
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('[[jobs]]\nname = "a\n')
    assert refused(jobctl("apply", "-f", str(bad_toml))).startswith(
        f"jobctl: {bad_toml}: invalid TOML: "
    )
    assert "cannot read" in refused(jobctl("apply", "-f", str(tmp_path / "missing.toml")))


def test_unknown_agent_is_not_found(jobctl: Invoke, tmp_path: Path) -> None:
    entry = {
        "name": "ask",
        "action": "agent",
        "trigger": "manual",
        "spec": {"agent": "nope", "prompt": "hi"},
    }
    message = refused(jobctl("apply", "-f", str(write_json(tmp_path / "j.json", [entry]))), 3)
    assert message.startswith("jobctl: jobs[0] ('ask'): no agent named 'nope'")


@BOTH_STORES
def test_paused_state_is_carried_both_ways(jobctl: Invoke, tmp_path: Path) -> None:
    document = write_json(tmp_path / "j.json", [http_entry("a", state="paused")])
    ok(jobctl("apply", "-f", str(document)))
    job = json.loads(jobctl("show", "a", "--json").stdout)
    assert (job["state"], job["next_run_at"]) == ("paused", None)
    write_json(document, [http_entry("a")])
    assert ok(jobctl("apply", "-f", str(document))).stdout.startswith("~ a")
    job = json.loads(jobctl("show", "a", "--json").stdout)
    assert job["state"] == "enabled" and job["next_run_at"] is not None


def once_entry(name: str, at: str, **extra: Any) -> dict[str, Any]:
    return http_entry(name, trigger="once", schedule=at, **extra)


def test_past_time_accepted_only_when_unchanged_or_completed(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    past = "2020-05-01T09:00:00+00:00"
    document = write_json(tmp_path / "j.json", [once_entry("new", past)])
    assert "that time has passed" in refused(jobctl("apply", "-f", str(document)))

    write_json(document, [once_entry("done", past, state="completed")])
    assert ok(jobctl("apply", "-f", str(document))).stdout.startswith("+ done")
    assert ok(jobctl("apply", "-f", str(document))).stdout.startswith("nothing to change")

    # A one-shot whose time passed before it fired: its time did not change.
    ok(jobctl("add", "late", "--url", "https://example.com/", "--at", FUTURE, "--tz", "UTC"))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE jobs SET schedule = ? WHERE name = 'late'", (past,))
    conn.close()
    entries = [once_entry("done", past, state="completed"), once_entry("late", past)]
    write_json(document, [*entries[:1], {**entries[1], "description": "edited"}])
    assert ok(jobctl("apply", "-f", str(document))).stdout.startswith("~ late")
    write_json(document, [*entries[:1], once_entry("late", "2020-05-02T09:00:00+00:00")])
    assert "jobs[1] ('late'): invalid schedule" in refused(jobctl("apply", "-f", str(document)))


def test_fired_one_shot_stays_completed(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    past = "2020-05-01T09:00:00+00:00"
    document = write_json(tmp_path / "j.json", [once_entry("once", past, state="completed")])
    ok(jobctl("apply", "-f", str(document)))
    write_json(document, [once_entry("once", past)])  # exported before it fired
    assert ok(jobctl("apply", "-f", str(document))).stdout.startswith("nothing to change")
    assert json.loads(jobctl("show", "once", "--json").stdout)["state"] == "completed"


def test_export_warns_about_literal_secrets(jobctl: Invoke) -> None:
    ok(
        jobctl(
            "add",
            "literal",
            "--url",
            "https://user:hunter2@example.com/x",
            "--manual",
            "--header",
            "Authorization: Bearer abc123",
        )
    )
    ok(
        jobctl(
            "add",
            "referenced",
            "--url",
            "https://user:${PASSWORD}@example.com/x",
            "--manual",
            "--header",
            "Authorization: Bearer ${TOKEN}",
        )
    )
    result = ok(jobctl("export"))
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2
    assert all(line.startswith("jobctl: warning: job 'literal': ") for line in warnings)
    assert "header Authorization" in warnings[0] and "URL credentials" in warnings[1]
    assert "${NAME}" in warnings[0]
    # Written as stored: literals so that apply round-trips, references as references.
    assert "https://user:hunter2@example.com/x" in result.stdout
    assert 'Authorization = "Bearer abc123"' in result.stdout
    assert "https://user:${PASSWORD}@example.com/x" in result.stdout
    assert 'Authorization = "Bearer ${TOKEN}"' in result.stdout
    assert ok(jobctl("export", "referenced", "--json")).stderr == ""


def test_export_unknown_name_is_not_found(jobctl: Invoke, db_path: Path) -> None:
    create_database(db_path)
    assert refused(jobctl("export", "nope"), 3).startswith("jobctl: no job named 'nope'")
    empty = ok(jobctl("export", "--json"))
    assert json.loads(empty.stdout) == {"version": 1, "agents": [], "jobs": []}


def test_apply_from_stdin(jobctl: Invoke) -> None:
    text = '[[jobs]]\nname = "a"\naction = "exec"\ntrigger = "manual"\nspec.command = "true"\n'
    result = ok(jobctl("apply", "-f", "-", input=text))
    assert result.stdout.splitlines()[0] == "+ a"
    document = json.dumps(
        {
            "version": 1,
            "jobs": [
                {"name": "b", "action": "exec", "trigger": "manual", "spec": {"command": "true"}}
            ],
        }
    )
    assert ok(jobctl("apply", "-f", "-", input=document)).stdout.splitlines()[0] == "+ b"


def test_jobs_changed_between_plan_and_write_are_not_overwritten(db_path: Path) -> None:
    from jobctl.apply import apply_document, apply_plan, plan_apply
    from jobctl.errors import Failed
    from jobctl.store import open_store

    now = datetime.now(UTC)
    store = open_store(db_path)
    conn = store.conn
    apply_document(store, {"jobs": [http_entry("a"), http_entry("b")]}, now)
    plan = plan_apply(store, {"jobs": [http_entry("a", description="x"), http_entry("c")]}, now)
    conn.execute("DELETE FROM jobs WHERE name = 'a'")  # another jobctl, meanwhile
    before = list(conn.iterdump())
    with pytest.raises(Failed, match="changed while the file was checked"):
        apply_plan(store, plan, now)
    assert list(conn.iterdump()) == before
    conn.close()


def test_bom_and_json_sniffing() -> None:
    from jobctl.jobfile import loads

    assert loads('\ufeff{"version": 1}') == {"version": 1}
    assert loads("\ufeffversion = 1\n") == {"version": 1}


def test_bulk_builder_matches_build_job() -> None:
    """Sharing a schedule between entries gives exactly what build_job gives each one."""
    from jobctl.apply_merge import JobBuilder
    from jobctl.file_entries import entry_change
    from jobctl.job_changes import build_job

    now = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    entries = [
        http_entry("a", trigger="cron", schedule="30 2 * * *", timezone="America/New_York"),
        http_entry(
            "b",
            trigger="cron",
            schedule="30 2 * * *",
            timezone="America/New_York",
            policies={"retries": 1},
        ),
        http_entry(
            "c", trigger="cron", schedule="30 2 * * *", timezone="America/New_York", state="paused"
        ),
        http_entry("d", schedule="15m+5m"),
        http_entry("e", schedule="15m+5m"),
        once_entry("f", "2026-12-01T09:00:00+01:00"),
        once_entry("g", "2026-12-01T09:00:00+01:00"),
        http_entry("h", trigger="manual", schedule=None),
    ]
    builder = JobBuilder(now)
    for entry in entries:
        change = entry_change({k: v for k, v in entry.items() if v is not None})
        assert builder.build(change) == build_job(change, existing=None, now=now, allow_past=True)


def test_real_subprocess_round_trip_and_error(tmp_path: Path) -> None:
    env = {"JOBCTL_DB": str(tmp_path / "a.db"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "jobctl"]
    document = json.dumps({"version": 1, "jobs": [http_entry("a"), http_entry("b")]})
    done = subprocess.run(
        [*command, "apply", "-f", "-"],
        input=document,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "applied: 2 added, 0 changed, 0 removed, 0 unchanged"
    exported = subprocess.run(
        [*command, "export"], env=env, capture_output=True, text=True, check=True
    ).stdout
    bad = exported.replace('schedule = "5m"', 'schedule = "5 minutes"', 1)
    done = subprocess.run(
        [*command, "apply", "-f", "-", "--prune"],
        input=bad,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("jobctl: jobs[0] ('a'): invalid interval '5 minutes'")
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""


def test_notifications_and_forwarded_payloads_round_trip(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    ok(
        jobctl(
            "add",
            "hooked",
            "--url",
            "https://example.com/in",
            "--manual",
            "--forward-payload",
            "--notify-on",
            "failure",
            "https://example.com/alerts",
            "--notify-on",
            "always",
            "${AUDIT_URL}",
            "--alert-if-no-success",
            "1d",
        )
    )
    exported = ok(jobctl("export", "--format", "json")).stdout
    document = json.loads(exported)["jobs"][0]
    assert document["spec"]["forward_payload"] is True
    assert document["policies"]["notify"] == [
        {"on": "failure", "url": "https://example.com/alerts"},
        {"on": "always", "url": "${AUDIT_URL}"},
    ]
    (tmp_path / "jobs.json").write_text(exported)
    other = tmp_path / "other.db"
    ok(jobctl("--db", str(other), "apply", "-f", str(tmp_path / "jobs.json")))
    assert ok(jobctl("--db", str(other), "export", "--format", "json")).stdout == exported


def test_exec_entries_run_through_sh_unless_they_say_shell_false(
    jobctl: Invoke, tmp_path: Path
) -> None:
    def exec_entry(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "name": name,
            "action": "exec",
            "trigger": "manual",
            "spec": {"command": "echo $HOME", **spec},
        }

    document = write_json(
        tmp_path / "j.json", [exec_entry("plain"), exec_entry("direct", shell=False)]
    )
    ok(jobctl("apply", "-f", str(document)))
    assert json.loads(jobctl("show", "plain", "--json").stdout)["spec"]["shell"] is True
    assert json.loads(jobctl("show", "direct", "--json").stdout)["spec"]["shell"] is False
    exported = json.loads(ok(jobctl("export", "--format", "json")).stdout)["jobs"]
    assert [job["spec"]["shell"] for job in exported] == [False, True]


def add_agents_and_their_jobs(jobctl: Invoke) -> None:
    ok(
        jobctl(
            "agent",
            "add",
            "gpt",
            "--url",
            "https://api.example.com/v1",
            "--model",
            "gpt-4o-mini",
            "--api-key-env",
            "GPT_KEY",
            "--system",
            "Be brief.",
            "--temperature",
            "0.2",
            "--max-tokens",
            "500",
            "--header",
            "X-Team: ops",
            "--timeout",
            "2m",
        )
    )
    ok(jobctl("agent", "add", "claude", "--kind", "anthropic", "--model", "claude-x"))
    ok(jobctl("agent", "add", "coder", "--command", "my-agent --print {prompt}"))
    ok(jobctl("agent", "add", "spare", "--command", "cat"))
    ok(jobctl("add", "ask", "--agent", "gpt", "--prompt", "hi", "--manual"))
    ok(jobctl("add", "code", "--agent", "coder", "--prompt", "fix it", "--manual"))
    ok(jobctl("add", "ping", "--url", "https://example.com/", "--manual"))


def agents_json(jobctl: Invoke, db: Path) -> list[dict[str, Any]]:
    agents = json.loads(ok(jobctl("agent", "list", "--json", "--db", str(db))).stdout)
    for agent in agents:
        del agent["created_at"], agent["updated_at"]
    return agents


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_agents_are_exported_and_applied_first(
    jobctl: Invoke, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setenv("GPT_KEY", "sk-the-real-key")
    add_agents_and_their_jobs(jobctl)
    exported = ok(jobctl("export", "--format", fmt))
    assert "sk-the-real-key" not in exported.stdout
    assert exported.stderr == ""
    document = tmp_path / f"jobs.{fmt}"
    document.write_text(exported.stdout)
    if fmt == "json":
        doc = json.loads(exported.stdout)
        assert list(doc) == ["version", "agents", "jobs"]
        assert doc["agents"][2] == {
            "name": "gpt",
            "kind": "openai",
            "url": "https://api.example.com/v1",
            "model": "gpt-4o-mini",
            "api_key_env": "GPT_KEY",
            "system": "Be brief.",
            "temperature": 0.2,
            "max_tokens": 500,
            "headers": {"X-Team": "ops"},
            "timeout": "2m",
        }

    other = tmp_path / "fresh.db"
    applied = ok(jobctl("apply", "-f", str(document), "--db", str(other)))
    assert applied.stdout.splitlines()[:4] == [
        "+ agent claude",
        "+ agent coder",
        "+ agent gpt",
        "+ agent spare",
    ]
    assert agents_json(jobctl, other) == agents_json(jobctl, db_path)
    assert ok(jobctl("export", "--format", fmt, "--db", str(other))).stdout == exported.stdout
    again = ok(jobctl("apply", "-f", str(document), "--db", str(other)))
    assert again.stdout == "nothing to change: 3 jobs and 4 agents unchanged\n"


def test_export_of_named_jobs_carries_only_their_agents(jobctl: Invoke) -> None:
    add_agents_and_their_jobs(jobctl)
    doc = json.loads(ok(jobctl("export", "code", "ping", "--json")).stdout)
    assert [agent["name"] for agent in doc["agents"]] == ["coder"]
    assert doc["agents"][0] == {
        "name": "coder",
        "kind": "command",
        "command": "my-agent --print {prompt}",
    }


def test_export_warns_about_an_agents_literal_secret(jobctl: Invoke) -> None:
    ok(
        jobctl(
            "agent",
            "add",
            "gpt",
            "--url",
            "https://api.example.com/v1",
            "--model",
            "m",
            "--header",
            "Authorization: Bearer sk-literal",
        )
    )
    result = ok(jobctl("export"))
    assert "sk-literal" in result.stdout  # written as stored, so that apply round-trips
    assert result.stderr == (
        "jobctl: warning: agent 'gpt': header Authorization written as a literal secret; "
        "use a ${NAME} reference, expanded by the daemon at fire time\n"
    )


def agent_entry(name: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "kind": "command", "command": "cat", **settings}


def agent_job(name: str, agent: str) -> dict[str, Any]:
    return {
        "name": name,
        "action": "agent",
        "trigger": "manual",
        "spec": {"agent": agent, "prompt": "hi"},
    }


def write_doc(path: Path, agents: list[dict[str, Any]] | None, jobs: list[Any]) -> Path:
    doc: dict[str, Any] = {"version": 1, "jobs": jobs}
    if agents is not None:
        doc["agents"] = agents
    path.write_text(json.dumps(doc))
    return path


def test_apply_changes_an_agent_in_place(jobctl: Invoke, db_path: Path, tmp_path: Path) -> None:
    document = write_doc(tmp_path / "a.json", [agent_entry("helper")], [agent_job("ask", "helper")])
    ok(jobctl("apply", "-f", str(document)))
    [before] = agents_json(jobctl, db_path)
    write_doc(
        document, [agent_entry("helper", command="tee", timeout="1m")], [agent_job("ask", "helper")]
    )
    dry = ok(jobctl("apply", "-f", str(document), "--dry-run"))
    assert dry.stdout.splitlines() == [
        "would ~ agent helper",
        "would apply: 0 added, 0 changed, 0 removed, 1 unchanged; "
        "agents: 0 added, 1 changed, 0 removed, 0 unchanged",
    ]
    assert agents_json(jobctl, db_path) == [before]
    plan = json.loads(ok(jobctl("apply", "-f", str(document), "--json")).stdout)
    assert plan["agents"] == {"added": [], "changed": ["helper"], "removed": [], "unchanged": []}
    [after] = agents_json(jobctl, db_path)
    assert (after["command"], after["timeout"]) == ("tee", 60.0)


def test_prune_removes_only_agents_that_nothing_in_the_file_uses(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    for name in ("used", "unused", "listed"):
        ok(jobctl("agent", "add", name, "--command", "cat"))
    ok(jobctl("add", "ask", "--agent", "used", "--prompt", "hi", "--manual"))
    ok(jobctl("add", "gone", "--agent", "unused", "--prompt", "hi", "--manual"))
    jobs = [agent_job("ask", "used")]

    old_format = write_doc(tmp_path / "old.json", None, jobs)
    result = ok(jobctl("apply", "-f", str(old_format), "--prune"))
    assert result.stdout.splitlines() == [
        "- gone",
        "applied: 0 added, 0 changed, 1 removed, 1 unchanged",
    ]
    assert [agent["name"] for agent in agents_json(jobctl, db_path)] == ["listed", "unused", "used"]

    document = write_doc(tmp_path / "new.json", [agent_entry("listed")], jobs)
    kept = ok(jobctl("apply", "-f", str(document)))
    assert "2 agents in the database are not in the file and kept" in kept.stderr
    assert [agent["name"] for agent in agents_json(jobctl, db_path)] == ["listed", "unused", "used"]
    pruned = ok(jobctl("apply", "-f", str(document), "--prune"))
    assert pruned.stdout.splitlines()[0] == "- agent unused"
    assert "1 agent in the database is not in the file and kept (its jobs use them)" in (
        pruned.stderr
    )
    assert [agent["name"] for agent in agents_json(jobctl, db_path)] == ["listed", "used"]
    assert ok(jobctl("apply", "-f", str(document), "--prune")).stdout.startswith(
        "nothing to change"
    )


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ({"name": "a", "kind": "robot"}, "agents[0] ('a'): invalid kind 'robot'"),
        ({"name": "a", "kind": "command"}, "agents[0] ('a'): a command agent needs command"),
        (agent_entry("a", model="m"), "agents[0] ('a'): model does not apply to a command agent"),
        (
            {"name": "a", "kind": "openai", "url": "https://h/v1", "model": "m", "api_key": "k"},
            "agents[0] ('a'): unknown agent key 'api_key'",
        ),
        (
            {"name": "a", "kind": "openai", "url": "https://h/v1", "model": "m", "temperature": 9},
            "agents[0] ('a'): invalid --temperature 9",
        ),
        (agent_entry("a", timeout=True), "agents[0] ('a'): timeout must be text or a number"),
        (agent_entry("Bad Name"), "agents[0] ('Bad Name'): invalid agent name"),
    ],
)
def test_bad_agent_entry_changes_nothing(
    jobctl: Invoke, db_path: Path, tmp_path: Path, agent: dict[str, Any], expected: str
) -> None:
    ok(jobctl("add", "keep", "--url", "https://example.com/", "--manual"))
    before = dump_database(db_path)
    document = write_doc(tmp_path / "bad.json", [agent_entry("fine"), agent], [])
    message = refused(jobctl("apply", "-f", str(document)))
    assert message.startswith(f"jobctl: {expected.replace('[0]', '[1]')}")
    assert dump_database(db_path) == before


def test_a_bad_job_leaves_the_files_agents_unwritten(
    jobctl: Invoke, db_path: Path, tmp_path: Path
) -> None:
    ok(jobctl("add", "keep", "--url", "https://example.com/", "--manual"))
    before = dump_database(db_path)
    document = write_doc(
        tmp_path / "bad.json",
        [agent_entry("helper")],
        [agent_job("ask", "helper"), agent_job("lost", "nobody")],
    )
    message = refused(jobctl("apply", "-f", str(document)), 3)
    assert message.startswith("jobctl: jobs[1] ('lost'): no agent named 'nobody'")
    assert dump_database(db_path) == before
    duplicate = write_doc(tmp_path / "dup.json", [agent_entry("a"), agent_entry("a")], [])
    assert "agents[1] ('a'): duplicate name" in refused(jobctl("apply", "-f", str(duplicate)))


def test_agents_changed_between_plan_and_write_are_not_overwritten(db_path: Path) -> None:
    from jobctl.apply import apply_document, apply_plan, plan_apply
    from jobctl.errors import Failed
    from jobctl.store import open_store

    now = datetime.now(UTC)
    store = open_store(db_path)
    conn = store.conn
    apply_document(store, {"agents": [agent_entry("spare"), agent_entry("other")]}, now)
    # --prune would remove `spare`, but meanwhile another jobctl adds a job that prompts it
    plan = plan_apply(store, {"agents": [agent_entry("other")], "jobs": []}, now, prune=True)
    assert [agent.name for agent in plan.agents.removed] == ["spare"]
    apply_document(store, {"jobs": [agent_job("ask", "spare")]}, now)
    before = list(conn.iterdump())
    with pytest.raises(Failed, match="changed while the file was checked"):
        apply_plan(store, plan, now)
    assert list(conn.iterdump()) == before
    # and an agent added meanwhile under a name the file adds
    plan = plan_apply(store, {"agents": [agent_entry("spare"), agent_entry("new")]}, now)
    conn.execute(
        "INSERT INTO agents (name, kind, config, created_at, updated_at) "
        "VALUES ('new', 'command', '{\"command\": \"cat\"}', 'x', 'x')"
    )
    before = list(conn.iterdump())
    with pytest.raises(Failed, match="changed while the file was checked"):
        apply_plan(store, plan, now)
    assert list(conn.iterdump()) == before
    conn.close()
