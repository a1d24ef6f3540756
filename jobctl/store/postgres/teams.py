"""Team rows: ordered members that answer a team job's prompt in turn (the rules are in
`jobctl.teams`)."""

from __future__ import annotations

from jobctl.models import ActionKind, Team
from jobctl.store.postgres.base import Connected
from jobctl.timeutil import to_db


class TeamOps(Connected):
    def team_named(self, name: str) -> Team | None:
        row = self.conn.execute("SELECT * FROM teams WHERE name = %s", (name,)).fetchone()
        return Team.from_row(row) if row is not None else None

    def all_teams(self) -> list[Team]:
        """Every team, by name."""
        return [
            Team.from_row(row) for row in self.conn.execute("SELECT * FROM teams ORDER BY name")
        ]

    def jobs_using_team(self, name: str) -> list[str]:
        """Names of the jobs whose prompt goes to the team `name`, sorted."""
        rows = self.conn.execute(
            "SELECT name FROM jobs WHERE action = %s AND spec::jsonb ->> 'team' = %s ORDER BY name",
            (ActionKind.AGENT, name),
        )
        return [str(row[0]) for row in rows]

    def insert_team(self, team: Team) -> int | None:
        """Insert the team; its id, or None (nothing written) when the name is taken."""
        assert team.created_at is not None and team.updated_at is not None
        row = self.conn.execute(
            "INSERT INTO teams (name, members, approval_timeout, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING id",
            (
                team.name,
                team.members_json(),
                team.approval_timeout,
                to_db(team.created_at),
                to_db(team.updated_at),
            ),
        ).fetchone()
        return int(row[0]) if row is not None else None

    def update_team(self, team: Team) -> bool:
        """Write the team over its row, if that still has its id and name."""
        assert team.updated_at is not None
        cursor = self.conn.execute(
            "UPDATE teams SET members = %s, approval_timeout = %s, updated_at = %s "
            "WHERE id = %s AND name = %s",
            (
                team.members_json(),
                team.approval_timeout,
                to_db(team.updated_at),
                team.id,
                team.name,
            ),
        )
        return cursor.rowcount == 1

    def delete_team(self, team_id: int) -> None:
        self.conn.execute("DELETE FROM teams WHERE id = %s", (team_id,))
