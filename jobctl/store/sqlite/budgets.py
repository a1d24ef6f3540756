"""Budget reads: the tokens runs used since a moment (from their recorded usage) and the
slots skipped over a budget. The one place token use is summed (see `jobctl.budgets`)."""

from __future__ import annotations

from datetime import datetime

from jobctl.models import ActionKind, RunStatus, TokenUse
from jobctl.store.sqlite.base import Connected
from jobctl.timeutil import to_db

# A run's tokens: its usage's total, else input plus output (a server may give only those).
_TOKENS = (
    "COALESCE(json_extract(details, '$.usage.total_tokens'), "
    "COALESCE(json_extract(details, '$.usage.prompt_tokens'), 0) + "
    "COALESCE(json_extract(details, '$.usage.completion_tokens'), 0))"
)


class BudgetOps(Connected):
    def tokens_used_since(
        self, since: datetime, *, job_id: int | None = None, agent: str | None = None
    ) -> TokenUse:
        """Tokens used by the runs that finished at or after `since`: a job's (`job_id`) or
        an agent's, whatever job asked it (`agent`); calls are runs that recorded usage."""
        where = (
            "finished_at >= ? AND (json_extract(details, '$.usage.total_tokens') IS NOT NULL "
            "OR json_extract(details, '$.usage.prompt_tokens') IS NOT NULL)"
        )
        params: list[object] = [to_db(since)]
        if job_id is not None:
            where += " AND job_id = ?"
            params.append(job_id)
        if agent is not None:
            where += " AND json_extract(details, '$.agent') = ?"
            params.append(agent)
        row = self.conn.execute(
            f"SELECT COALESCE(SUM({_TOKENS}), 0), "
            "COALESCE(SUM(json_extract(details, '$.usage.prompt_tokens')), 0), "
            "COALESCE(SUM(json_extract(details, '$.usage.completion_tokens')), 0), "
            f"COUNT(*) FROM runs WHERE {where}",
            params,
        ).fetchone()
        return TokenUse(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def budget_skips_since(self, job_id: int, since: datetime) -> int:
        """How many of the job's slots were skipped over a budget at or after `since`."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM runs WHERE job_id = ? AND status = ? AND created_at >= ? "
            "AND json_extract(details, '$.budget') IS NOT NULL",
            (job_id, RunStatus.SKIPPED, to_db(since)),
        ).fetchone()
        return int(row[0])

    def budgeted_job_names(self) -> list[str]:
        """Names of the agent jobs that set a token budget of their own, sorted."""
        rows = self.conn.execute(
            "SELECT name FROM jobs WHERE action = ? "
            "AND json_extract(spec, '$.budget_tokens') IS NOT NULL ORDER BY name",
            (ActionKind.AGENT,),
        )
        return [str(row[0]) for row in rows]
