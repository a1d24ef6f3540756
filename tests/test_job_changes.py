"""JobChange -> Job: the one validator `add`, `edit`, `apply` and `import crontab` share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobctl.errors import InvalidInput
from jobctl.job_changes import build_job
from jobctl.models import ExecSpec, HttpSpec, JobChange, NotifyTarget

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_fields_not_given_are_kept_and_empty_values_clear() -> None:
    job = build_job(
        JobChange(
            name="a",
            url="https://example.com/x",
            headers={"X-Token": " abc "},
            body="hi",
            every="15m",
            offset="5m",
            timezone="UTC",
            policies={"retries": "2"},
            notify=(NotifyTarget("failure", "https://example.com/n"),),
        ),
        existing=None,
        now=T0,
    )
    assert job.spec == HttpSpec(
        url="https://example.com/x", method="POST", headers={"X-Token": "abc"}, body="hi"
    )
    assert (job.schedule, job.policies.retries, len(job.policies.notify)) == ("15m+5m", 2, 1)
    kept = build_job(JobChange(description="d"), existing=job, now=T0)
    assert (kept.spec, kept.schedule, kept.policies) == (job.spec, job.schedule, job.policies)
    cleared = build_job(
        JobChange(
            headers={},
            body="",
            offset="",
            policies={"retries": ""},
            notify=(NotifyTarget("failure", ""),),
        ),
        existing=job,
        now=T0,
    )
    # no body: GET again, as a method nobody chose follows the body
    assert cleared.spec == HttpSpec(url="https://example.com/x", method="GET")
    assert (cleared.schedule, cleared.policies.retries, cleared.policies.notify) == (
        "15m",
        None,
        (),
    )


def test_a_change_of_action_starts_a_new_spec() -> None:
    job = build_job(
        JobChange(name="a", url="https://example.com/x", manual=True), existing=None, now=T0
    )
    changed = build_job(JobChange(command="make", env={"A": "1"}), existing=job, now=T0)
    assert changed.spec == ExecSpec(command="make", env={"A": "1"}, shell=True)
    with pytest.raises(InvalidInput, match="--header applies to http jobs only"):
        build_job(JobChange(headers={}), existing=changed, now=T0)
    with pytest.raises(InvalidInput, match="invalid --env '1A=x'"):
        build_job(JobChange(env={"1A": "x"}), existing=changed, now=T0)
