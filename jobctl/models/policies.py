"""A job's policies: what it set, and the values a run obeys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from jobctl.models.words import FAILURES, ActionKind, Catchup, Overlap

DEFAULT_TIMEOUTS = {"http": 30.0, "agent": 600.0, "exec": 3600.0}
POLICY_NAMES = (
    "timeout",
    "retries",
    "backoff",
    "overlap",
    "catchup",
    "catchup_window",
    "jitter",
    "max_failures",
    "keep",
    "keep_for",
    "alert_if_no_success",
)


# A policy's stored value: seconds (float), a count (int) or a choice (text).
PolicyValue = float | int | str


class NotifyDict(TypedDict):
    """A notify target's stored and JSON form."""

    on: str
    url: str


class EffectivePoliciesDict(TypedDict):
    """The contract's `policies` object of a job: every policy's effective value."""

    timeout: float
    retries: int
    backoff: float
    overlap: str
    catchup: str
    catchup_window: float
    jitter: float
    max_failures: int | None
    keep: int
    keep_for: float | None
    alert_if_no_success: float | None
    notify: list[NotifyDict]


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise ValueError(f"a duration in seconds, not {value!r}")
    return float(value)


def _count(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise ValueError(f"a whole number, not {value!r}")
    return int(value)


def _notify_targets(value: object) -> tuple[NotifyTarget, ...]:
    if not value:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"a list of notify targets, not {value!r}")
    return tuple(NotifyTarget(on=str(item["on"]), url=str(item["url"])) for item in value)


@dataclass(frozen=True)
class NotifyTarget:
    """A URL told how a run ended: `on` is failure, success or always."""

    on: str
    url: str

    def to_dict(self) -> NotifyDict:
        return {"on": self.on, "url": self.url}


@dataclass(frozen=True)
class EffectivePolicies:
    """Every policy with the value a run obeys; a policy that is off is None."""

    timeout: float
    retries: int
    backoff: float
    overlap: Overlap
    catchup: Catchup
    catchup_window: float
    jitter: float
    max_failures: int | None
    keep: int
    keep_for: float | None
    alert_if_no_success: float | None
    notify: tuple[NotifyTarget, ...] = ()

    def to_dict(self) -> EffectivePoliciesDict:
        """The contract's `policies` object, keys in POLICY_NAMES order then `notify`."""
        return {
            "timeout": self.timeout,
            "retries": self.retries,
            "backoff": self.backoff,
            "overlap": self.overlap,
            "catchup": self.catchup,
            "catchup_window": self.catchup_window,
            "jitter": self.jitter,
            "max_failures": self.max_failures,
            "keep": self.keep,
            "keep_for": self.keep_for,
            "alert_if_no_success": self.alert_if_no_success,
            "notify": [target.to_dict() for target in self.notify],
        }


@dataclass(frozen=True)
class Policies:
    """The policies a job set; None (or no `notify` target) is "not set": the default applies.

    Durations are seconds, counts whole numbers; the stored form holds only what was set.
    """

    timeout: float | None = None
    retries: int | None = None
    backoff: float | None = None
    overlap: Overlap | None = None
    catchup: Catchup | None = None
    catchup_window: float | None = None
    jitter: float | None = None
    max_failures: int | None = None
    keep: int | None = None
    keep_for: float | None = None
    alert_if_no_success: float | None = None
    notify: tuple[NotifyTarget, ...] = ()

    def to_dict(self) -> dict[str, PolicyValue | list[NotifyDict]]:
        """The stored form: only the policies that are set."""
        data: dict[str, PolicyValue | list[NotifyDict]] = {
            name: getattr(self, name) for name in POLICY_NAMES if getattr(self, name) is not None
        }
        if self.notify:
            data["notify"] = [target.to_dict() for target in self.notify]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Policies:
        if not data:  # most jobs set none: `list` reads 1,000 of them
            return cls()
        overlap, catchup = data.get("overlap"), data.get("catchup")
        return cls(
            timeout=_seconds(data.get("timeout")),
            retries=_count(data.get("retries")),
            backoff=_seconds(data.get("backoff")),
            overlap=Overlap(str(overlap)) if overlap is not None else None,
            catchup=Catchup(str(catchup)) if catchup is not None else None,
            catchup_window=_seconds(data.get("catchup_window")),
            jitter=_seconds(data.get("jitter")),
            max_failures=_count(data.get("max_failures")),
            keep=_count(data.get("keep")),
            keep_for=_seconds(data.get("keep_for")),
            alert_if_no_success=_seconds(data.get("alert_if_no_success")),
            notify=_notify_targets(data.get("notify")),
        )

    def effective(self, action: str, *, agent_timeout: float | None = None) -> EffectivePolicies:
        """Every policy with its effective value.

        The one place a run's timeout is decided: the job's own, else (for an agent job) the
        agent's `--timeout`, else the action kind's default.
        """
        timeout = DEFAULT_TIMEOUTS[action]
        if action == ActionKind.AGENT and agent_timeout is not None:
            timeout = float(agent_timeout)
        # Written out (no loop over names): the daemon asks once per job it reads.
        return EffectivePolicies(
            timeout=timeout if self.timeout is None else self.timeout,
            retries=0 if self.retries is None else self.retries,
            backoff=10.0 if self.backoff is None else self.backoff,
            overlap=self.overlap or Overlap.SKIP,
            catchup=self.catchup or Catchup.LATEST,
            catchup_window=86400.0 if self.catchup_window is None else self.catchup_window,
            jitter=0.0 if self.jitter is None else self.jitter,
            max_failures=self.max_failures or None,  # 0 is off
            keep=1000 if self.keep is None else self.keep,
            keep_for=self.keep_for,
            alert_if_no_success=self.alert_if_no_success,
            notify=self.notify,
        )

    def notify_targets(self, status: str) -> list[str]:
        """The URLs to tell about a run that ended with `status` (a cancelled run is
        neither a failure nor a success: only "always" hears of it)."""
        wanted = {"always"}
        if status in FAILURES:
            wanted.add("failure")
        elif status == "succeeded":
            wanted.add("success")
        return [target.url for target in self.notify if target.on in wanted]


# Each policy's default (timeout's depends on the action kind: DEFAULT_TIMEOUTS).
DEFAULTS: dict[str, object] = {
    name: value
    for name, value in Policies().effective(ActionKind.HTTP).to_dict().items()
    if name not in ("timeout", "notify")
}
