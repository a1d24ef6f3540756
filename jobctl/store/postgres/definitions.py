"""Definitions as stored, for checks that must not trust them (doctor): jobs and agents with
their JSON unparsed."""

from __future__ import annotations

from jobctl.models import StoredAgent, StoredJob
from jobctl.store.postgres.base import Connected


class DefinitionOps(Connected):
    def stored_jobs(self) -> list[StoredJob]:
        """Every job, by name."""
        return [
            StoredJob(*row)
            for row in self.conn.execute(
                "SELECT name, action, spec, policies, trigger, schedule, timezone, state "
                "FROM jobs ORDER BY name"
            )
        ]

    def stored_agents(self) -> list[StoredAgent]:
        """Every agent, by name."""
        return [
            StoredAgent(*row)
            for row in self.conn.execute("SELECT name, kind, config FROM agents ORDER BY name")
        ]
