"""Token budgets, prices and the per-job model: a real daemon against a local model server
whose answers cost 400 tokens, a real HTTP sink for notifications."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from jobctl import engine
from jobctl.actions import Outcome
from jobctl.agents import add_agent
from jobctl.budgets import period_start
from jobctl.catalog import add_job
from jobctl.models import AgentChange, AgentSpec, JobChange, NotifyTarget, Owner
from jobctl.paths import DbLocation
from jobctl.store import Store, open_store
from tests.agent_servers import AgentServer, start_agent_server
from tests.conftest import Invoke
from tests.realparts import DaemonProcess, Reply, Sink, job_runs, run_jobctl, wait_until

# What the sink answers as a chat completion: 300 tokens in, 100 out.
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "model": "small",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 300, "completion_tokens": 100, "total_tokens": 400},
}


@pytest.mark.parametrize(
    ("now", "per", "zone", "start"),
    [
        ("2026-11-30T08:00:00+00:00", "day", "UTC", "2026-11-30T00:00:00+00:00"),
        ("2026-11-30T08:00:00+00:00", "week", "UTC", "2026-11-30T00:00:00+00:00"),  # a Monday
        ("2026-12-06T23:59:00+00:00", "week", "UTC", "2026-11-30T00:00:00+00:00"),
        ("2026-11-30T08:00:00+00:00", "month", "UTC", "2026-11-01T00:00:00+00:00"),
        # 02:00 UTC is still the 29th in New York
        ("2026-11-30T02:00:00+00:00", "day", "America/New_York", "2026-11-29T05:00:00+00:00"),
        # the month began before the clocks went back (EDT, -4)
        ("2026-11-15T12:00:00+00:00", "month", "America/New_York", "2026-11-01T04:00:00+00:00"),
    ],
)
def test_a_budget_period_begins_at_local_midnight(
    now: str, per: str, zone: str, start: str
) -> None:
    began = period_start(datetime.fromisoformat(now), per, ZoneInfo(zone))
    assert began.astimezone(UTC) == datetime.fromisoformat(start)


def _show(jobctl: Invoke, name: str) -> dict:
    result = jobctl("show", name, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_budget_options_are_kept_edited_cleared_and_checked(jobctl: Invoke) -> None:
    added = jobctl(
        "agent", "add", "m", "--url", "http://127.0.0.1:9/v1", "--model", "big",
        "--budget-tokens", "50,000", "--budget-per", "week",
        "--price-in", "0.15", "--price-out", "$0.60",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    agent = json.loads(jobctl("agent", "show", "m", "--json").stdout)
    assert (agent["budget_tokens"], agent["budget_per"]) == (50000, "week")
    assert (agent["price_in"], agent["price_out"]) == (0.15, 0.6)
    result = jobctl(
        "add", "digest", "--agent", "m", "--prompt", "hi", "--every", "1h",
        "--model", "small", "--max-tokens", "300", "--budget-tokens", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = _show(jobctl, "digest")
    assert data["spec"]["model"] == "small" and data["spec"]["max_tokens"] == 300
    assert data["spec"]["budget_tokens"] == 1000 and data["spec"]["budget_per"] == "day"
    assert [(b["owner"], b["name"], b["tokens"], b["per"], b["used"]) for b in data["budgets"]] == [
        ("job", "digest", 1000, "day", 0),
        ("agent", "m", 50000, "week", 0),
    ]
    assert data["token_use"]["total_tokens"] == 0 and data["token_use"]["cost_usd"] == 0.0
    assert "0 of 1,000 tokens this day" in jobctl("show", "digest").stdout

    assert jobctl("edit", "digest", "--budget-tokens", "").exit_code == 0
    data = _show(jobctl, "digest")
    assert "budget_tokens" not in data["spec"] and "budget_per" not in data["spec"]
    assert data["spec"]["model"] == "small"  # untouched by the edit
    assert jobctl("agent", "edit", "m", "--budget-tokens", "0").exit_code == 0
    assert _show(jobctl, "digest")["budgets"] == []

    for bad in (
        ("edit", "digest", "--budget-tokens", "lots"),
        ("edit", "digest", "--max-tokens", "-3"),
        ("agent", "edit", "m", "--price-in", "cheap"),
        ("add", "ping", "--url", "http://127.0.0.1:9/", "--every", "1h", "--model", "x"),
    ):
        refused = jobctl(*bad)
        assert refused.exit_code == 2, (bad, refused.stdout)
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr


def test_the_jobs_model_and_max_tokens_override_its_agents(jobctl: Invoke, db_path: Path) -> None:
    server: AgentServer = start_agent_server()
    try:
        jobctl("agent", "add", "m", "--url", server.openai_url, "--model", "big")
        jobctl("add", "plain", "--agent", "m", "--prompt", "hi", "--manual")
        jobctl(
            "add", "small", "--agent", "m", "--prompt", "hi", "--manual",
            "--model", "small", "--max-tokens", "64",
        )  # fmt: skip
        assert run_jobctl(db_path, "run", "plain").returncode == 0
        plain = server.last("openai").body
        assert run_jobctl(db_path, "run", "small").returncode == 0
        small = server.last("openai").body
    finally:
        server.close()
    assert plain["model"] == "big" and "max_tokens" not in plain
    assert small["model"] == "small" and small["max_tokens"] == 64
    details = json.loads(job_runs(db_path, "small")[0]["details"])
    assert details["model"] == "small-served"  # the model that answered, as it names itself


def test_the_third_slot_over_a_daily_budget_is_skipped_and_told_once(
    db_path: Path, sink: Sink
) -> None:
    sink.replies["/v1/chat/completions"] = Reply(
        body=json.dumps(COMPLETION).encode(), headers={"Content-Type": "application/json"}
    )
    agent = run_jobctl(
        db_path, "agent", "add", "m", "--url", f"{sink.url}/v1", "--model", "small",
        "--price-in", "1", "--price-out", "2",
    )  # fmt: skip
    assert agent.returncode == 0, agent.stderr
    added = run_jobctl(
        db_path, "add", "digest", "--agent", "m", "--prompt", "hi", "--every", "1s",
        "--budget-tokens", "1000", "--budget-per", "day",
        "--notify-on", "failure", f"{sink.url}/notify",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    def budget_skips() -> list:
        rows = job_runs(db_path, "digest")
        return [r for r in rows if r["status"] == "skipped" and "over budget" in r["error"]]

    daemon = DaemonProcess(db_path).wait_ready()
    try:
        wait_until(lambda: len(budget_skips()) >= 3, what="three slots skipped over budget")
        wait_until(lambda: sink.requests_to("/notify"), what="the budget notification")
    finally:
        assert daemon.stop() == 0
    rows = job_runs(db_path, "digest")
    executed = [r for r in rows if r["status"] not in ("skipped", "missed")]
    assert [r["status"] for r in executed] == ["succeeded", "succeeded"], daemon.log()
    assert len(sink.requests_to("/v1/chat/completions")) == 2
    first_skip = budget_skips()[0]
    assert first_skip["id"] > executed[1]["id"]
    assert first_skip["error"] == (
        "skipped: over budget: job digest used 800 of 1,000 tokens this day "
        "(2 calls, about 400 each)"
    )
    assert json.loads(first_skip["details"])["budget"]["used"] == 800
    assert "over budget" in daemon.log()

    notices = sink.requests_to("/notify")
    assert len(notices) == 1  # once per period, however many slots it skips
    notice = json.loads(notices[0].body)
    assert notice["event"] == "over_budget" and notice["job"] == "digest"
    assert notice["run"] == first_skip["id"]
    assert "used 800 of 1,000 tokens" in notice["text"]

    shown = json.loads(run_jobctl(db_path, "show", "digest", "--json").stdout)
    assert shown["budgets"][0]["used"] == 800 and shown["budgets"][0]["calls"] == 2
    use = shown["token_use"]
    assert (use["prompt_tokens"], use["completion_tokens"], use["calls"]) == (600, 200, 2)
    assert use["cost_usd"] == pytest.approx((600 * 1 + 200 * 2) / 1e6)
    assert shown["runs_skipped"] >= 3
    status = json.loads(run_jobctl(db_path, "status", "--json").stdout)
    assert [(b["name"], b["used"], b["tokens"]) for b in status["budgets"]] == [
        ("digest", 800, 1000)
    ]
    text = run_jobctl(db_path, "status").stdout
    assert "job digest: 800 of 1,000 tokens this day (80%)" in text


def test_an_agents_budget_counts_every_job_that_asks_it(db_path: Path, sink: Sink) -> None:
    sink.replies["/v1/chat/completions"] = Reply(
        body=json.dumps(COMPLETION).encode(), headers={"Content-Type": "application/json"}
    )
    run_jobctl(
        db_path, "agent", "add", "m", "--url", f"{sink.url}/v1", "--model", "small",
        "--budget-tokens", "1000",
    )  # fmt: skip
    for name in ("one", "two"):
        added = run_jobctl(db_path, "add", name, "--agent", "m", "--prompt", "hi", "--manual")
        assert added.returncode == 0, added.stderr
    # two calls by hand (a person's `run` is never skipped), 800 tokens of the agent's 1000
    assert run_jobctl(db_path, "run", "one").returncode == 0
    assert run_jobctl(db_path, "run", "two").returncode == 0
    edited = run_jobctl(db_path, "edit", "two", "--every", "1s")
    assert edited.returncode == 0, edited.stderr
    daemon = DaemonProcess(db_path).wait_ready()
    try:
        skipped = wait_until(
            lambda: [r for r in job_runs(db_path, "two") if r["status"] == "skipped"],
            what="a slot of the other job skipped over the agent's budget",
        )
    finally:
        assert daemon.stop() == 0
    assert skipped[0]["error"].startswith("skipped: over budget: agent m used 800 of 1,000")
    assert len(sink.requests_to("/v1/chat/completions")) == 2
    shown = run_jobctl(db_path, "agent", "show", "m").stdout
    assert "800 of 1,000 tokens this day (80%)" in shown


# ---------------------------------------------------------------- in-process, both stores

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


class CostlyAnswers:
    """Answers every claim at once, saying the call used 400 tokens (300 in, 100 out)."""

    async def fire(self, claim: engine.Claim, env: Mapping[str, str]) -> Outcome:
        details = {
            "agent": claim.job.spec.agent if isinstance(claim.job.spec, AgentSpec) else None,
            "usage": {"prompt_tokens": 300, "completion_tokens": 100, "total_tokens": 400},
        }
        return Outcome(
            status="succeeded",
            started_at=claim.claimed_at,
            finished_at=claim.claimed_at,
            output="ok",
            details=details,
        )

    async def close(self) -> None:
        pass


def _step(store: Store, now: datetime) -> engine.Stepped:
    async def one() -> engine.Stepped:
        runner = engine.Runner(engine.Limits(), actions=CostlyAnswers())
        try:
            owner = Owner.this_process()
            return await engine.step(store, now, runner=runner, owner=owner, awake_since=T0)
        finally:
            await runner.close()

    return asyncio.run(one())


def test_a_daily_budget_skips_until_the_next_day_and_tells_once(store_at: DbLocation) -> None:
    store = open_store(store_at)
    add_agent(store, AgentChange(name="m", url="http://127.0.0.1:9/v1", model="x"), T0)
    change = JobChange(
        name="digest",
        agent="m",
        prompt="hi",
        every="1h",
        timezone="UTC",
        budget_tokens="1000",
        notify=(NotifyTarget("failure", "http://127.0.0.1:9/notify"),),
    )
    add_job(store, change, T0)
    seen = []
    for hour in range(1, 13):  # 13:00 to 00:00 the next day
        stepped = _step(store, T0 + timedelta(hours=hour, milliseconds=5))
        ran = [item.outcome.status for item in stepped.recorded]
        seen.append((ran, len(stepped.claimed.over_budget), len(stepped.claimed.notices)))
    assert seen[:3] == [(["succeeded"], 0, 0), (["succeeded"], 0, 0), ([], 1, 1)]
    assert seen[3:11] == [([], 1, 0)] * 8  # the rest of the day: skipped, nobody told again
    assert seen[11] == (["succeeded"], 0, 0)  # a new day, a new budget
    use = store.tokens_used_since(T0, job_id=1)
    assert (use.total, use.prompt, use.completion, use.calls) == (1200, 900, 300, 3)
    assert store.tokens_used_since(T0, agent="m").total == 1200
    assert store.tokens_used_since(T0, agent="other").calls == 0
    assert store.budget_skips_since(1, T0) == 9
    assert store.budgeted_job_names() == ["digest"]


def test_runs_a_chain_queues_count_against_the_budget_too(store_at: DbLocation) -> None:
    store = open_store(store_at)
    add_agent(store, AgentChange(name="m", url="http://127.0.0.1:9/v1", model="x"), T0)
    add_job(store, JobChange(name="up", command="true", every="1h", timezone="UTC"), T0)
    after = (("up", "succeeded"),)
    change = JobChange(
        name="digest", agent="m", prompt="hi", manual=True, timezone="UTC",
        budget_tokens="1000", after=after,
    )  # fmt: skip
    add_job(store, change, T0)
    for hour in range(1, 5):
        _step(store, T0 + timedelta(hours=hour, milliseconds=5))
        _step(store, T0 + timedelta(hours=hour, milliseconds=10))  # starts the chained run
    digest = store.job_named("digest")
    assert digest is not None and digest.id is not None
    runs = store.runs_by_id(range(1, store.newest_run_id() + 1))
    mine = [(run.trigger, run.status) for run in runs if run.job_id == digest.id]
    assert mine == [("chain", "succeeded")] * 2 + [("chain", "skipped")] * 2
    skipped = [run for run in runs if run.job_id == digest.id and run.status == "skipped"]
    assert skipped[0].error is not None
    assert skipped[0].error.startswith("skipped: over budget: job digest used 800 of 1,000")


def test_budgets_prices_and_the_model_go_through_export_and_apply(
    jobctl: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobctl(
        "agent", "add", "m", "--url", "http://127.0.0.1:9/v1", "--model", "big",
        "--budget-tokens", "5000", "--price-in", "0.15", "--price-out", "0.6",
    )  # fmt: skip
    jobctl(
        "add", "digest", "--agent", "m", "--prompt", "hi", "--every", "1h", "--model", "small",
        "--max-tokens", "300", "--budget-tokens", "2000", "--budget-per", "month",
    )  # fmt: skip
    exported = jobctl("export").stdout
    assert "budget_tokens = 2000" in exported and "price_out = 0.6" in exported
    path = tmp_path / "jobs.toml"
    path.write_text(exported)
    monkeypatch.setenv("JOBCTL_DB", str(tmp_path / "other.db"))
    applied = jobctl("apply", "-f", str(path))
    assert applied.exit_code == 0, applied.stderr
    assert jobctl("export").stdout == exported
    assert "nothing to change" in jobctl("apply", "-f", str(path)).stdout
