"""The package's shape: no import cycles (imports inside functions counted) and no module imports another's
private names. Read from the source with `ast`, so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / 'src'
PACKAGE = 'ex_color'


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _is_import_module_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, 'attr', getattr(node.func, 'id', None)) == 'import_module'
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).startswith(PACKAGE)
    )


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
    """Module → the ex_color modules it imports (anywhere in it), each with the names taken from it."""
    modules = {_module_name(p): p for p in (SRC / PACKAGE).rglob('*.py')}
    graph: dict[str, list[tuple[str, list[str]]]] = {}
    for name, path in modules.items():
        found = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith(PACKAGE):
                    found.append((node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                found += [(a.name, []) for a in node.names if a.name.startswith(PACKAGE)]
            elif _is_import_module_call(node):  # importlib.import_module('ex_color.…'): an import all the same
                found.append((node.args[0].value, []))
        edges = []
        for target, names in found:
            edges.append((target, [n for n in names if f'{target}.{n}' not in modules]))
            # `from ex_color.x import y` where y is a module of x: an import of ex_color.x.y too.
            edges += [(f'{target}.{n}', []) for n in names if f'{target}.{n}' in modules]
        graph[name] = edges
    return graph


def test_no_module_imports_another_modules_private_names():
    private = [
        f'{module} imports {target}.{n}'
        for module, edges in _imports().items()
        for target, names in edges
        for n in names
        if n.startswith('_') and not n.startswith('__') and target != module
    ]
    assert private == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules():
    """A package's `__init__` re-exports its own modules, so edges into a package's own modules from its
    `__init__` are the package's shape, not a cycle; every other edge counts, lazy ones included."""
    graph: dict[str, set[str]] = {}
    for module, edges in _imports().items():
        targets = set()
        for target, _ in edges:
            if target == module or (target.startswith(module + '.')):  # a package importing its own modules
                continue
            targets.add(target)
        graph[module] = targets
    # Importing `ex_color.x.y` also runs `ex_color.x`: an edge to a module is an edge to its packages' __init__s.
    for module, targets in graph.items():
        for target in list(targets):
            parts = target.split('.')
            for i in range(2, len(parts)):
                parent = '.'.join(parts[:i])
                if parent != module and not module.startswith(parent + '.'):
                    targets.add(parent)
    assert _cycles(graph) == []


@pytest.mark.parametrize('cycle', [{'a': {'b'}, 'b': {'c'}, 'c': {'a'}}])
def test_the_cycle_finder_finds_a_cycle(cycle):
    assert _cycles(cycle) == [['a', 'b', 'c']]
