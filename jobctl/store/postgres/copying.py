"""Reading and writing whole rows for `jobctl db copy` (tables and keys from COPY_TABLES)."""

from __future__ import annotations

from collections.abc import Sequence

from jobctl.store.copy_tables import COPY_MARKER, CopyTable
from jobctl.store.postgres.base import Connected

Value = object


class CopyOps(Connected):
    def copy_batch(
        self, table: CopyTable, after: Sequence[Value] | None, limit: int
    ) -> tuple[list[str], list[tuple[Value, ...]]]:
        """Up to `limit` rows of `table` after key `after` (None: from the first), in key
        order, with their column names."""
        keys = ", ".join(table.key)
        where, params = "", list(after or ())
        if after is not None:
            where = f"WHERE ({keys}) > ({', '.join(['%s'] * len(table.key))})"
        if table.name == "settings":
            where = (where + " AND" if where else "WHERE") + " key != %s"
            params.append(COPY_MARKER)
        cursor = self.conn.execute(
            f"SELECT * FROM {table.name} {where} ORDER BY {keys} LIMIT %s", (*params, limit)
        )
        columns = [column.name for column in cursor.description or []]
        return columns, [tuple(row) for row in cursor.fetchall()]

    def copy_count(self, table: CopyTable) -> int:
        """How many rows of `table` a copy carries."""
        where = f" WHERE key != '{COPY_MARKER}'" if table.name == "settings" else ""
        return int(self.value(f"SELECT count(*) FROM {table.name}{where}"))

    def copy_last_key(self, table: CopyTable) -> tuple[Value, ...] | None:
        """The highest key of `table` (None when it is empty)."""
        keys = ", ".join(table.key)
        row = self.conn.execute(
            f"SELECT {keys} FROM {table.name} ORDER BY {keys} DESC LIMIT 1"
        ).fetchone()
        return tuple(row) if row is not None else None

    def copy_write(
        self, table: CopyTable, columns: Sequence[str], rows: Sequence[tuple[Value, ...]]
    ) -> None:
        """Own transaction: the rows written; one already there is rewritten (`upsert`) or
        kept."""
        names = ", ".join(columns)
        marks = ", ".join(["%s"] * len(columns))
        if table.upsert:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in table.key)
            conflict = f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updates}"
        else:
            conflict = "ON CONFLICT DO NOTHING"
        override = "OVERRIDING SYSTEM VALUE " if table.key == ("id",) else ""
        with self.write(), self.conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table.name} ({names}) {override}VALUES ({marks}) {conflict}", rows
            )

    def copy_mark(self, source: str) -> None:
        """Own transaction: the target remembers its source (a later copy may resume)."""
        with self.write():
            self.conn.execute(
                "INSERT INTO settings (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (COPY_MARKER, source),
            )

    def copy_done(self) -> None:
        """Own transaction: after a copy, new ids continue after the copied ones."""
        with self.write():
            for table in ("agents", "jobs", "runs", "events"):
                self.conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )

    def copied_from(self) -> str | None:
        """The source this database was copied from, if it was."""
        row = self.conn.execute(
            "SELECT value FROM settings WHERE key = %s", (COPY_MARKER,)
        ).fetchone()
        return row[0] if row is not None else None
