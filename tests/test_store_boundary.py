"""Only jobctl/store speaks to a database: sqlite3 is imported only under store/ (the SQLite
store, and the PostgreSQL one for its error class), psycopg only under store/postgres."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jobctl"


def imports(path: Path, module: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == module for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == module:
            return True
    return False


def importers(module: str, *, allowed: tuple[str, ...]) -> set[str]:
    """The modules outside the `allowed` folder that import `module`."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[: len(allowed)] != allowed and imports(path, module):
            found.add(relative.as_posix())
    return found


def test_only_the_store_imports_sqlite3() -> None:
    assert importers("sqlite3", allowed=("store",)) == set()


def test_only_the_postgres_store_imports_psycopg() -> None:
    assert importers("psycopg", allowed=("store", "postgres")) == set()


def test_the_stores_do_import_their_drivers() -> None:  # the walk works
    assert imports(PACKAGE / "store" / "sqlite" / "connection.py", "sqlite3")
    assert imports(PACKAGE / "store" / "postgres" / "connection.py", "psycopg")
