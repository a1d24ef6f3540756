"""Only jobctl/store speaks to SQLite: nothing else imports sqlite3 (at any depth)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jobctl"


def imports_sqlite3(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == "sqlite3" for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
            return True
    return False


def test_only_the_store_imports_sqlite3() -> None:
    importers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "store" not in path.relative_to(PACKAGE).parts[:1] and imports_sqlite3(path)
    }
    assert importers == set()


def test_the_store_does_import_sqlite3() -> None:
    assert imports_sqlite3(PACKAGE / "store" / "sqlite" / "connection.py")  # the walk works
