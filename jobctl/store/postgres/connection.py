"""Open a PostgreSQL database (psycopg 3, autocommit, rows read by name or position) and
migrate it.

The connection runs in autocommit: a lone statement is its own transaction, as on SQLite,
and `write()` opens an explicit BEGIN ... COMMIT. A password given in the URL is never
printed: `redact_url` is what messages show.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, Self

import psycopg
from psycopg.abc import Params, Query, QueryNoTemplate
from psycopg.rows import RowMaker

from jobctl.errors import Failed
from jobctl.paths import redact_url
from jobctl.store.postgres.migrations import migrate


class PostgresError(sqlite3.Error):
    """An error of the PostgreSQL server or connection (psycopg's is its `__cause__`).

    A subclass of sqlite3.Error, which is `jobctl.store.StoreError`: the code that copes
    with a database error (a full disk, a lost connection) catches one class for both
    stores."""


StoreError = PostgresError
CONNECT_TIMEOUT_S = 10


class Row(tuple[Any, ...]):
    """A row read by position (`row[0]`, unpacking) or by column name (`row["name"]`),
    like sqlite3.Row."""

    columns: dict[str, int]

    def __new__(cls, values: Sequence[Any], columns: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row.columns = columns
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self.columns[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self.columns)


def named_row(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    """psycopg's row factory for `Row`."""
    description = cursor.description or []
    columns: dict[str, int] = {}
    for index, column in enumerate(description):
        columns.setdefault(column.name, index)  # the first of a repeated name, as SQLite

    def make(values: Sequence[Any]) -> Row:
        return Row(values, columns)

    return make


class Cursor(psycopg.Cursor[Row]):
    """psycopg's cursor, raising PostgresError."""

    def execute(  # type: ignore[override]  # jobctl passes no t-string templates
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        conn = self.connection
        try:
            if isinstance(conn, Connection) and conn.begin_pending:
                # BEGIN travels with the transaction's first statement: one round trip.
                conn.begin_pending = False
                with conn.pipeline():
                    conn.execute("BEGIN")
                    super().execute(query, params, prepare=prepare, binary=binary)
            else:
                super().execute(query, params, prepare=prepare, binary=binary)
        except psycopg.Error as exc:
            raise PostgresError(_first_line(exc)) from exc
        _answered(conn)
        return self

    def executemany(
        self, query: Query, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        conn = self.connection
        if isinstance(conn, Connection) and conn.begin_pending:
            conn.begin_pending = False
            conn.execute("BEGIN")
        try:
            super().executemany(query, params_seq, returning=returning)
        except psycopg.Error as exc:
            raise PostgresError(_first_line(exc)) from exc
        _answered(self.connection)


class Connection(psycopg.Connection[Row]):
    """psycopg's connection, knowing when the server last answered it: the sign of life
    the lease keeper reads (a loop whose statements wait on locks still gets answers)."""

    answered_at: float = 0.0  # time.monotonic()
    begin_pending: bool = False  # a write transaction opened: BEGIN goes with its first statement


def _answered(conn: psycopg.Connection[Any]) -> None:
    if isinstance(conn, Connection):
        conn.answered_at = time.monotonic()


def connect(
    url: str, *, migrate_schema: bool = True, timeout: float = CONNECT_TIMEOUT_S
) -> Connection:
    """Open the database at `url` (autocommit, named rows) and, unless told not to, migrate it."""
    try:
        conn = Connection.connect(
            url,
            autocommit=True,
            row_factory=named_row,
            cursor_factory=Cursor,
            connect_timeout=max(1, round(timeout)),
        )
    except psycopg.Error as exc:
        raise Failed(f"cannot open the database {redact_url(url)}: {_first_line(exc)}") from None
    try:
        if migrate_schema:
            migrate(conn)
    except (psycopg.Error, PostgresError) as exc:
        conn.close()
        raise Failed(
            f"{redact_url(url)} is not a usable jobctl database: {_first_line(exc)}"
        ) from None
    except BaseException:
        conn.close()
        raise
    conn.answered_at = time.monotonic()
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
