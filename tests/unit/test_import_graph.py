"""The import graph of vecembed/ and adapters/ has no cycle, counting imports hidden inside functions too.

Issue 21: ``ingest.py`` and ``store.py`` imported each other through four imports inside functions. The graph
here is read from the source with :mod:`ast` (nothing is imported): an edge for every ``import`` and
``from ... import`` of a module of these packages, wherever it stands; only imports under
``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Import roots: where each top-level package of the wheel lives in the source tree.
SOURCES = {"vecembed": ROOT / "vecembed", **{p.name: p for p in (ROOT / "adapters").iterdir()
                                             if (p / "__init__.py").exists()}}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at any depth, except inside ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_imports(ast.Module(body=[child])))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def import_graph() -> dict[str, set[str]]:
    """``{module: the modules of these packages it imports}``, resolved to the most specific module."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a name inside a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle or a knot of cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions_and_resolves_them() -> None:
    graph = import_graph()
    assert len(graph) > 60 and "vecembed_chroma.store" in graph
    # an import inside a function counts (vecembed.__getattr__ imports embedding_cache lazily)
    assert "vecembed.embedding_cache" in graph["vecembed"]
    assert {"vecembed.records", "vecembed.store", "vecembed.retry"} <= graph["vecembed.ingest"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_under_vecembed_and_adapters() -> None:
    assert cycles(import_graph()) == []


def test_the_layers_of_the_store_side_import_only_downwards() -> None:
    # DESIGN.md: records < identity < store < ingest < collection < distributed; the contract imports no engine.
    graph = import_graph()
    order = ["vecembed.records", "vecembed.store", "vecembed.retry", "vecembed.ingest", "vecembed.collection"]

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    for i, lower in enumerate(order):
        above = set(order[i + 1 :]) & reaches(lower)
        assert not above, f"{lower} imports {sorted(above)}, which sit above it"
    assert not any(m.startswith("vecembed.distributed") for m in reaches("vecembed.collection"))
