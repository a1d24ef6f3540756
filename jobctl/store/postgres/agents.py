"""Agent rows: the profiles agent jobs prompt (which may be written is `jobctl.agents`')."""

from __future__ import annotations

import json

from jobctl.models import ActionKind, Agent
from jobctl.store.postgres.base import Connected
from jobctl.timeutil import to_db


class AgentOps(Connected):
    def agent_named(self, name: str) -> Agent | None:
        row = self.conn.execute("SELECT * FROM agents WHERE name = %s", (name,)).fetchone()
        return Agent.from_row(row) if row is not None else None

    def all_agents(self) -> list[Agent]:
        """Every agent, by name."""
        return [
            Agent.from_row(row) for row in self.conn.execute("SELECT * FROM agents ORDER BY name")
        ]

    def agent_names(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT name FROM agents")]

    def jobs_using_agent(self, name: str) -> list[str]:
        """Names of the jobs whose action prompts the agent `name`, sorted."""
        rows = self.conn.execute(
            "SELECT name FROM jobs WHERE action = %s AND spec::jsonb ->> 'agent' = %s "
            "ORDER BY name",
            (ActionKind.AGENT, name),
        )
        return [str(row[0]) for row in rows]

    def insert_agent(self, agent: Agent) -> int | None:
        """Insert the agent; its id, or None (nothing written) when the name is taken."""
        assert agent.created_at is not None and agent.updated_at is not None
        row = self.conn.execute(
            "INSERT INTO agents (name, kind, config, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING id",
            (
                agent.name,
                agent.kind,
                json.dumps(agent.config, sort_keys=True),
                to_db(agent.created_at),
                to_db(agent.updated_at),
            ),
        ).fetchone()
        return int(row[0]) if row is not None else None

    def update_agent(self, agent: Agent) -> bool:
        """Write the agent over its row, if that still has its id and name."""
        assert agent.updated_at is not None
        cursor = self.conn.execute(
            "UPDATE agents SET kind = %s, config = %s, updated_at = %s WHERE id = %s AND name = %s",
            (
                agent.kind,
                json.dumps(agent.config, sort_keys=True),
                to_db(agent.updated_at),
                agent.id,
                agent.name,
            ),
        )
        return cursor.rowcount == 1

    def delete_agent(self, agent_id: int) -> None:
        self.conn.execute("DELETE FROM agents WHERE id = %s", (agent_id,))

    def delete_agent_if_unused(self, agent_id: int) -> bool:
        """Delete the agent unless a job prompts it (checked in the same statement)."""
        cursor = self.conn.execute(
            "DELETE FROM agents WHERE id = %s AND NOT EXISTS (SELECT 1 FROM jobs "
            "WHERE action = %s AND spec::jsonb ->> 'agent' = agents.name)",
            (agent_id, ActionKind.AGENT),
        )
        return cursor.rowcount == 1
