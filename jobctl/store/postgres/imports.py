"""Writing rows copied from another database, keys and all: the target side of
`jobctl db copy`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from jobctl.store.copying import CopiedTable
from jobctl.store.postgres.base import Connected

# The tables whose ids PostgreSQL hands out (identity columns): a copied row keeps its id,
# and the next id follows the highest copied one.
IDENTITY_TABLES = ("jobs", "agents", "runs", "events")


class ImportOps(Connected):
    def last_key(self, table: CopiedTable) -> tuple[Any, ...] | None:
        """The highest key the table holds (None when empty, or for a table without keys)."""
        if not table.keys:
            return None
        keys = sql.SQL(", ").join(sql.Identifier(key) for key in table.keys)
        descending = sql.SQL(", ").join(
            sql.SQL("{} DESC").format(sql.Identifier(key)) for key in table.keys
        )
        query = sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT 1").format(
            keys, sql.Identifier(table.name), descending
        )
        row = self.conn.execute(query).fetchone()
        return tuple(row) if row is not None else None

    def insert_copied_rows(
        self, table: CopiedTable, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """In the caller's transaction: the rows, their keys kept; one already here is
        left as it is."""
        if not rows:
            return
        overriding = (
            sql.SQL(" OVERRIDING SYSTEM VALUE") if table.name in IDENTITY_TABLES else sql.SQL("")
        )
        query = sql.SQL("INSERT INTO {} ({}){} VALUES ({}) ON CONFLICT DO NOTHING").format(
            sql.Identifier(table.name),
            sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            overriding,
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        self.conn.cursor().executemany(query, rows)

    def follow_copied_ids(self) -> None:
        """Each identity's next id comes after the highest copied one."""
        for name in IDENTITY_TABLES:
            self.conn.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                    "coalesce((SELECT max(id) FROM {}), 0) + 1, false)"
                ).format(sql.Identifier(name)),
                (name,),
            )

    def row_count(self, table: CopiedTable) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))
        return int(self.value(query))

    def job_identities(self) -> set[tuple[int, str, str]]:
        """(id, name, created_at) of every job: what tells one database's jobs from another's."""
        return {
            (int(i), str(n), str(c))
            for i, n, c in self.conn.execute("SELECT id, name, created_at FROM jobs")
        }
