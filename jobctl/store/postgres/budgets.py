"""Budget reads: the tokens runs used since a moment (from their recorded usage) and the
slots skipped over a budget (the SQLite store's `budgets`, in PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from jobctl.models import ActionKind, RunStatus, TokenUse
from jobctl.store.postgres.base import Connected
from jobctl.timeutil import to_db

_USAGE = "(details::jsonb -> 'usage' ->> '{}')::bigint"
_PROMPT, _COMPLETION, _TOTAL = (
    _USAGE.format("prompt_tokens"),
    _USAGE.format("completion_tokens"),
    _USAGE.format("total_tokens"),
)
# A run's tokens: its usage's total, else input plus output (a server may give only those).
_TOKENS = f"COALESCE({_TOTAL}, COALESCE({_PROMPT}, 0) + COALESCE({_COMPLETION}, 0))"


class BudgetOps(Connected):
    def tokens_used_since(
        self, since: datetime, *, job_id: int | None = None, agent: str | None = None
    ) -> TokenUse:
        """Tokens used by the runs that finished at or after `since`: a job's (`job_id`) or
        an agent's, whatever job asked it (`agent`); calls are runs that recorded usage."""
        where = f"finished_at >= %s AND ({_TOTAL} IS NOT NULL OR {_PROMPT} IS NOT NULL)"
        params: list[object] = [to_db(since)]
        if job_id is not None:
            where += " AND job_id = %s"
            params.append(job_id)
        if agent is not None:
            where += " AND details::jsonb ->> 'agent' = %s"
            params.append(agent)
        row = self.conn.execute(
            f"SELECT COALESCE(SUM({_TOKENS}), 0)::bigint, COALESCE(SUM({_PROMPT}), 0)::bigint, "
            f"COALESCE(SUM({_COMPLETION}), 0)::bigint, count(*) FROM runs WHERE {where}",
            params,
        ).fetchone()
        assert row is not None
        return TokenUse(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def budget_skips_since(self, job_id: int, since: datetime) -> int:
        """How many of the job's slots were skipped over a budget at or after `since`."""
        row = self.conn.execute(
            "SELECT count(*) FROM runs WHERE job_id = %s AND status = %s AND created_at >= %s "
            "AND details::jsonb -> 'budget' IS NOT NULL",
            (job_id, RunStatus.SKIPPED, to_db(since)),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def budgeted_job_names(self) -> list[str]:
        """Names of the agent jobs that set a token budget of their own, sorted."""
        rows = self.conn.execute(
            "SELECT name FROM jobs WHERE action = %s "
            "AND spec::jsonb -> 'budget_tokens' IS NOT NULL ORDER BY name",
            (ActionKind.AGENT,),
        )
        return [str(row[0]) for row in rows]
