"""The PostgreSQL implementation of the store (psycopg 3, the `jobctl[postgres]` extra): the
only package that imports psycopg."""

from __future__ import annotations

from jobctl.store.postgres.connection import StoreError
from jobctl.store.postgres.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from jobctl.store.postgres.store import (
    PostgresStore,
    open_postgres_read_only,
    open_postgres_store,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "PostgresStore",
    "StoreError",
    "migrate",
    "open_postgres_read_only",
    "open_postgres_store",
    "schema_version",
]
