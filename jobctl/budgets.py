"""Token budgets: the rules for a job's or an agent's budget, the period it counts over,
and how much of it the runs have used (from the usage they recorded).

A budget is `tokens` per `per` (day, week or month, in the job's time zone). A slot is
skipped when the tokens used this period plus what a call of this job typically costs would
pass the budget; `engine.budget` applies that while claiming. No SQL here: the store sums
the usage (`tokens_used_since`), so team steps can be counted in that one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypedDict

from jobctl.errors import InvalidInput

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from jobctl.models import Agent, AgentSpec, Job
    from jobctl.store import Store

PERIODS = ("day", "week", "month")


def budget_period(value: str) -> str:
    """A `--budget-per` value, checked."""
    period = value.strip().lower()
    if period not in PERIODS:
        raise InvalidInput(f"invalid --budget-per {value!r}: use day, week or month")
    return period


def token_count(value: str | int | float, what: str) -> int | None:
    """A positive whole number of tokens as given ('' or 0 clears it: None)."""
    text = str(value).strip().replace("_", "").replace(",", "")
    if text == "":
        return None
    try:
        number = int(text)
    except ValueError:
        raise InvalidInput(f"invalid {what} {value!r}: give a whole number of tokens") from None
    if number < 0:
        raise InvalidInput(f"invalid {what} {value!r}: it cannot be negative")
    return number or None


def price(value: str | float, what: str) -> float | None:
    """A price in dollars per million tokens ('' clears it: None)."""
    text = str(value).strip().lstrip("$")
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        raise InvalidInput(f"invalid {what} {value!r}: give dollars per million tokens") from None
    if number < 0 or number != number or number == float("inf"):
        raise InvalidInput(f"invalid {what} {value!r}: give dollars per million tokens")
    return number


def period_start(now: datetime, per: str, zone: ZoneInfo) -> datetime:
    """When the current `per` began, in `zone` (weeks begin on Monday)."""
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if per == "week":
        start -= timedelta(days=start.weekday())
    elif per == "month":
        start = start.replace(day=1)
    return start


class BudgetDict(TypedDict):
    """The JSON form of a budget and its use."""

    owner: str
    name: str
    tokens: int
    per: str
    used: int
    calls: int
    since: str | None


@dataclass(frozen=True)
class Budget:
    """A budget of `tokens` per `per`, set on a job or an agent (`owner` names which);
    its periods begin at midnight in `timezone` (the job's; the machine's for an agent)."""

    owner: Literal["job", "agent"]
    name: str
    tokens: int
    per: str
    timezone: str


@dataclass(frozen=True)
class BudgetUse:
    """How much of a budget this period's runs used, and in how many calls."""

    budget: Budget
    since: datetime
    used: int
    calls: int

    @property
    def typical_call(self) -> int:
        """What one call of this period cost on average (0 before the first)."""
        return round(self.used / self.calls) if self.calls else 0

    def would_exceed(self) -> bool:
        """Whether one more call like the others would pass the budget."""
        return self.used >= self.budget.tokens or (
            self.used + self.typical_call > self.budget.tokens
        )

    def reason(self) -> str:
        """Why a slot was skipped, in one line."""
        budget = self.budget
        return (
            f"skipped: over budget: {budget.owner} {budget.name} used {self.used:,} of "
            f"{budget.tokens:,} tokens this {budget.per} ({self.calls} call"
            f"{'' if self.calls == 1 else 's'}, about {self.typical_call:,} each)"
        )

    def to_dict(self) -> BudgetDict:
        from jobctl.timeutil import iso_z

        return {
            "owner": self.budget.owner,
            "name": self.budget.name,
            "tokens": self.budget.tokens,
            "per": self.budget.per,
            "used": self.used,
            "calls": self.calls,
            "since": iso_z(self.since),
        }


def agent_budget(agent: Agent) -> Budget | None:
    """The agent's own budget, if it has one."""
    from jobctl.timeutil import local_zone_name

    tokens = agent.config.get("budget_tokens")
    if not isinstance(tokens, int) or tokens <= 0:
        return None
    per = str(agent.config.get("budget_per") or "day")
    return Budget("agent", agent.name, tokens, per, local_zone_name())


def budgets_of(job: Job, spec: AgentSpec, agent: Agent | None) -> list[Budget]:
    """The budgets a run of this agent job counts against: the job's, then its agent's."""
    found = []
    if spec.budget_tokens:
        per = spec.budget_per or "day"
        found.append(Budget("job", job.name, spec.budget_tokens, per, job.timezone))
    own = agent_budget(agent) if agent is not None else None
    if own is not None:
        found.append(own)
    return found


def budget_use(store: Store, budget: Budget, job_id: int | None, now: datetime) -> BudgetUse:
    """The use of `budget` since its period began: a job's budget counts that job's runs,
    an agent's the runs that asked it (of every job)."""
    from jobctl.timeutil import get_zone

    since = period_start(now, budget.per, get_zone(budget.timezone))
    if budget.owner == "job":
        use = store.tokens_used_since(since, job_id=job_id)
    else:
        use = store.tokens_used_since(since, agent=budget.name)
    return BudgetUse(budget, since, use.total, use.calls)


def cost(agent: Agent, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars the tokens cost at the agent's prices (None when it has none)."""
    price_in, price_out = agent.config.get("price_in"), agent.config.get("price_out")
    if price_in is None and price_out is None:
        return None
    return (prompt_tokens * float(price_in or 0) + completion_tokens * float(price_out or 0)) / 1e6


class TokenUseDict(TypedDict):
    """The JSON form of the tokens used since a moment, with their estimated cost."""

    since: str | None
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    calls: int
    cost_usd: float | None


def month_use(store: Store, job: Job, agent: Agent | None, now: datetime) -> TokenUseDict:
    """The tokens the job's runs used this calendar month, and what they cost at its
    agent's prices (None when the agent has none)."""
    from jobctl.timeutil import get_zone, iso_z

    since = period_start(now, "month", get_zone(job.timezone))
    use = store.tokens_used_since(since, job_id=job.id)
    dollars = cost(agent, use.prompt, use.completion) if agent is not None else None
    return {
        "since": iso_z(since),
        "total_tokens": use.total,
        "prompt_tokens": use.prompt,
        "completion_tokens": use.completion,
        "calls": use.calls,
        "cost_usd": round(dollars, 6) if dollars is not None else None,
    }


def job_budgets(
    store: Store, job: Job, now: datetime
) -> tuple[list[BudgetDict], TokenUseDict | None]:
    """An agent job's budgets with their use so far, and its tokens this month (for `show`
    and `--json`); nothing for the other kinds."""
    from jobctl.models import AgentSpec

    spec = job.spec
    if not isinstance(spec, AgentSpec):
        return [], None
    agent = store.find_agent(spec.agent)
    budgets = [
        budget_use(store, budget, job.id, now).to_dict() for budget in budgets_of(job, spec, agent)
    ]
    return budgets, month_use(store, job, agent, now)


def describe_use(use: BudgetDict) -> str:
    """`1,200 of 5,000 tokens this day (24%)` for a budget line."""
    share = use["used"] / use["tokens"] if use["tokens"] else 0
    return (
        f"{use['owner']} {use['name']}: {use['used']:,} of {use['tokens']:,} tokens this "
        f"{use['per']} ({share:.0%})"
    )


def all_budgets(store: Store, now: datetime) -> list[BudgetDict]:
    """Every budget with its use so far (for `status`): the jobs', then the agents'."""
    from jobctl.models import AgentSpec

    uses: list[BudgetDict] = []
    for name in store.budgeted_job_names():
        job = store.job_named(name)
        if job is None or not isinstance(job.spec, AgentSpec):
            continue
        uses += [
            budget_use(store, budget, job.id, now).to_dict()
            for budget in budgets_of(job, job.spec, None)
        ]
    for agent in store.all_agents():
        budget = agent_budget(agent)
        if budget is not None:
            uses.append(budget_use(store, budget, None, now).to_dict())
    return uses
