"""The house rules of ``../shared/ARCHITECTURE.md``, checked on the source: no import cycle
among spikeforge's modules (module- and function-level imports alike), library packages never
import :mod:`spikeforge.experiments`, and every public name a module lists in ``__all__``
imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import spikeforge

ROOT = Path(spikeforge.__file__).parent
LIBRARY_EXEMPT = {"spikeforge.cli", "spikeforge.__main__"}  # may import experiments


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The spikeforge modules ``name`` imports anywhere in its source (resolved to modules)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    """Import edges, leaving out a package's edges to its own parents and children."""
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {
            t
            for t in _imports(name, path)
            if t != name and not name.startswith(t + ".") and not t.startswith(name + ".")
        }
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return [*stack[stack.index(v) :], v]
            if v not in state and (cycle := visit(v)):
                return cycle
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (cycle := visit(u)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_library_packages_never_import_experiments() -> None:
    offenders = {
        name: sorted(t for t in targets if t.startswith("spikeforge.experiments"))
        for name, targets in _graph().items()
        if not name.startswith("spikeforge.experiments") and name not in LIBRARY_EXEMPT
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "spikeforge.__main__"))
def test_every_name_in_all_imports(name: str) -> None:
    module = importlib.import_module(name)
    public = getattr(module, "__all__", None)
    packages_and_shared = name.count(".") <= 1 or MODULES[name].name == "__init__.py"
    if packages_and_shared:
        assert public is not None, f"{name} has no __all__"
    for item in public or []:
        assert hasattr(module, item), f"{name}.__all__ lists {item!r}, which does not import"
    if public is not None:
        assert len(set(public)) == len(public), f"{name}.__all__ repeats a name"
