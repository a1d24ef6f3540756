"""The package's imports keep its layers: click stays in jobctl.cli, and no module imports, even
lazily (inside a function or under TYPE_CHECKING), a module that imports it back."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jobctl"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """The dotted names a module imports, anywhere in it, relative imports resolved.

    `from a import b` names `a.b` (which is `a` itself when b is not a module).
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (a name resolves to its longest module)."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (a depth-first walk)."""
    finished: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in finished:
                cycle = visit(target)
                if cycle is not None:
                    return cycle
        finished.add(path.pop())
        return None

    for module in sorted(graph):
        if module not in finished:
            cycle = visit(module)
            if cycle is not None:
                return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
        ({"a": {"c"}, "b": {"c"}, "c": set()}, None),  # a diamond is no cycle
    ],
)
def test_find_cycle_finds_what_there_is(
    graph: dict[str, set[str]], cycle: list[str] | None
) -> None:
    assert find_cycle(graph) == cycle


def test_the_graph_sees_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .sub import thing\n"
        "if TYPE_CHECKING:\n"
        "    from jobctl.daemon import Daemon\n"
        "def later() -> None:\n"
        "    import jobctl.listener\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source, encoding="utf-8")
    names = set(imported_names("jobctl.actions.mod", path))
    assert {
        "jobctl.actions.sibling",
        "jobctl.actions.sub.thing",
        "jobctl.daemon.Daemon",
        "jobctl.listener",
    } <= names


def test_only_the_cli_imports_click() -> None:
    """Statically (lazy imports included) and when each module below the CLI is imported."""
    below_cli = [
        module
        for module in module_files()
        if module != "jobctl.__main__" and not module.startswith("jobctl.cli")
    ]
    graph = {module: set() for module in below_cli}
    for module, path in module_files().items():
        if module in graph and any(
            name.split(".")[0] == "click" for name in imported_names(module, path)
        ):
            graph[module].add("click")
    assert not [m for m, targets in graph.items() if targets], (
        "modules below jobctl.cli import click"
    )

    # One interpreter imports them one by one and names the first that brings click in.
    code = (
        "import importlib, sys\n"
        f"for name in {below_cli!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'click' in sys.modules:\n"
        "        sys.exit(f'importing {name} imported click')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(below_cli) > 20  # the walk found the package
