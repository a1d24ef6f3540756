"""Per-job policies: names, defaults, validation, and their JSON form.

A job stores only the policies someone set; the effective value falls back to the default,
which for `timeout` depends on the action kind (so changing the kind changes the default).
"""

from __future__ import annotations

import math
from datetime import timedelta

from jobctl.errors import InvalidInput
from jobctl.models import DEFAULT_TIMEOUTS as DEFAULT_TIMEOUTS
from jobctl.models import DEFAULTS as DEFAULTS
from jobctl.models import POLICY_NAMES as POLICY_NAMES
from jobctl.models import Catchup, Overlap, PolicyValue
from jobctl.timeutil import format_duration, parse_duration

OVERLAP_CHOICES = tuple(m.value for m in Overlap)
CATCHUP_CHOICES = tuple(m.value for m in Catchup)

MAX_BACKOFF = 3600.0
MAX_DURATION = 10 * 365 * 86400.0  # past this a policy is a typo, and datetimes overflow
MAX_COUNT = 100_000_000

# Policy name -> kind of value: duration (seconds), count (int >= 0) or a choice.
DURATION_POLICIES = (
    "timeout",
    "backoff",
    "catchup_window",
    "jitter",
    "keep_for",
    "alert_if_no_success",
)
COUNT_POLICIES = ("retries", "max_failures", "keep")
CHOICE_POLICIES = {"overlap": OVERLAP_CHOICES, "catchup": CATCHUP_CHOICES}
NOTIFY_WHEN = ("failure", "success", "always")
_SUBSECOND_OK = ("jitter", "backoff")


def option_name(policy: str) -> str:
    return "--" + policy.replace("_", "-")


def parse_policy(policy: str, value: object) -> PolicyValue | None:
    """Validate one policy value from the CLI (text) or a document (text or number).

    Returns the stored form: seconds as float, counts as int, choices as text; None clears.
    """
    if value is None or value == "":
        return None
    flag = option_name(policy)
    if policy in DURATION_POLICIES:
        if isinstance(value, bool):
            raise InvalidInput(f"invalid {flag} {value!r}: expected a duration like 30s")
        if isinstance(value, int | float):
            seconds = float(value)
            if not math.isfinite(seconds):
                raise InvalidInput(f"invalid {flag} {value!r}: expected a duration like 30s")
        else:
            seconds = parse_duration(
                str(value), what=flag, allow_ms=policy in _SUBSECOND_OK
            ).total_seconds()
        if seconds < 0:
            raise InvalidInput(f"invalid {flag} {value!r}: must not be negative")
        if seconds > MAX_DURATION:
            raise InvalidInput(f"invalid {flag} {value!r}: at most 10 years")
        if policy == "timeout" and seconds <= 0:
            raise InvalidInput(f"invalid {flag} {value!r}: must be more than 0s")
        return seconds
    if policy in COUNT_POLICIES:
        try:
            number = int(str(value), 10) if not isinstance(value, int) else value
        except ValueError:
            raise InvalidInput(f"invalid {flag} {value!r}: expected a whole number") from None
        if isinstance(value, bool) or number < 0:
            raise InvalidInput(f"invalid {flag} {value!r}: expected a whole number >= 0")
        if number > MAX_COUNT:
            raise InvalidInput(f"invalid {flag} {value!r}: at most {MAX_COUNT:,}")
        if policy == "keep" and number < 1:
            raise InvalidInput(f"invalid {flag} {value!r}: keep at least 1 run")
        if policy == "retries" and number > 100:
            raise InvalidInput(f"invalid {flag} {value!r}: at most 100 retries")
        return number
    if policy in CHOICE_POLICIES:
        text = str(value).lower()
        if text not in CHOICE_POLICIES[policy]:
            choices = ", ".join(CHOICE_POLICIES[policy])
            raise InvalidInput(f"invalid {flag} {value!r}: choose one of {choices}")
        return text
    raise InvalidInput(f"unknown policy {policy!r}")


def parse_seconds(policy: str, value: object) -> float | None:
    """A duration policy's value (`timeout`, `backoff` ...) in seconds; None clears."""
    seconds = parse_policy(policy, value)
    if policy not in DURATION_POLICIES or isinstance(seconds, int | str):
        raise InvalidInput(f"unknown duration policy {policy!r}")
    return seconds


def as_text(policy: str, value: object) -> str:
    """A policy value for people and for TOML export."""
    if value is None:
        return "off"
    if policy in DURATION_POLICIES and isinstance(value, int | float):
        return format_duration(timedelta(seconds=value))
    return str(value)


def backoff_delay(first: float, attempt: int) -> float:
    """The delay before `attempt` (2, 3, ...): first, doubling, capped at one hour."""
    return float(min(MAX_BACKOFF, first * 2 ** max(0, attempt - 2)))
