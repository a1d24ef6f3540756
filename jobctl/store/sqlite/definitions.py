"""Definitions as stored, for checks that must not trust them (doctor): jobs and agents with
their JSON unparsed, and the runs in flight with their owners."""

from __future__ import annotations

from jobctl.models import Run, RunStatus, RunTrigger, StoredAgent, StoredJob
from jobctl.store.sqlite.base import Connected
from jobctl.timeutil import from_db


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

    def running_runs(self) -> list[Run]:
        """The `running` runs with their job's name, by id (only the columns every schema
        version has: the others are None)."""
        return [
            Run(
                id=row["id"],
                job_id=row["job_id"],
                trigger=RunTrigger(row["trigger"]),
                status=RunStatus(row["status"]),
                attempt=row["attempt"],
                scheduled_for=from_db(row["scheduled_for"]),
                created_at=from_db(row["created_at"]),
                started_at=from_db(row["started_at"]) if row["started_at"] else None,
                owner_pid=row["owner_pid"],
                owner_host=row["owner_host"],
                job=row["job"],
            )
            for row in self.conn.execute(
                "SELECT runs.id, runs.job_id, runs.trigger, runs.status, runs.attempt, "
                "runs.scheduled_for, runs.created_at, runs.started_at, runs.owner_pid, "
                "runs.owner_host, jobs.name AS job "
                # runs_running named: with ORDER BY id SQLite would rather walk the key.
                "FROM runs INDEXED BY runs_running LEFT JOIN jobs ON jobs.id = runs.job_id "
                "WHERE runs.status = 'running' ORDER BY runs.id"
            )
        ]
