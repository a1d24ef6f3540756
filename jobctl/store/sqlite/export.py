"""Reading whole tables in key order, in batches: the source side of `jobctl db copy`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobctl.store.copying import CopiedTable
from jobctl.store.sqlite.base import Connected


class ExportOps(Connected):
    def table_columns(self, table: CopiedTable) -> list[str]:
        cursor = self.conn.execute(f"SELECT * FROM {table.name} LIMIT 0")
        return [column[0] for column in cursor.description]

    def rows_after(
        self, table: CopiedTable, after: Sequence[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to `limit` rows (every column) whose key comes after `after` (from the first
        when None), in key order; a table without keys whole."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        if not table.keys:
            return list(cursor.execute(f"SELECT * FROM {table.name}"))
        keys = ", ".join(table.keys)
        where = ""
        params: list[Any] = []
        if after is not None:
            where = f"WHERE ({keys}) > ({', '.join('?' * len(table.keys))})"
            params = list(after)
        return list(
            cursor.execute(
                f"SELECT * FROM {table.name} {where} ORDER BY {keys} LIMIT ?", (*params, limit)
            )
        )

    def row_count(self, table: CopiedTable) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])

    def job_identities(self) -> set[tuple[int, str, str]]:
        """(id, name, created_at) of every job: what tells one database's jobs from another's."""
        return {
            (int(i), str(n), str(c))
            for i, n, c in self.conn.execute("SELECT id, name, created_at FROM jobs")
        }
