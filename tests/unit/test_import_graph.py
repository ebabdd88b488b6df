"""The boundaries between packages (issue #20), read from the source with ``ast`` (nothing is imported):

- the kit (hotline/) imports nothing from ``services``;
- no service imports another service (the workbench included): a service imports the kit and itself;
- no import circle inside a service (imports inside functions and under TYPE_CHECKING count too);
- supervision's wings import one way: cases and warnings never import levels, cases never imports warnings.

Each rule is also run on a small deliberately bad tree, so the checks are seen to fail."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
Graph = dict[str, set[str]]  # module -> the modules it imports (only hotline.* and services.*)
OURS = ("hotline", "services")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ours ``source`` imports (``from a.b import c`` is a.b.c when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node, is_package)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name.split(".")[0] in OURS}


def build_graph(root: Path, packages: Iterable[str] = OURS) -> Graph:
    files = {module_name(root, p): p for package in packages for p in sorted((root / package).rglob("*.py"))}
    known = set(files)
    return {name: imports_of(path.read_text("utf-8"), name, path.name == "__init__.py", known)
            for name, path in files.items()}


def service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def kit_imports_services(graph: Graph) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() if m.split(".")[0] == "hotline"
                  for t in targets if t.split(".")[0] == "services")


def cross_service_imports(graph: Graph) -> list[str]:
    out = []
    for module, targets in graph.items():
        own = service_of(module)
        if own is None:  # the kit (its own rule) or services/__init__.py
            continue
        for target in targets:
            if target.split(".")[0] == "services" and service_of(target) != own:
                out.append(f"{module} -> {target}")
    return sorted(out)


def circles(graph: Graph) -> list[list[str]]:
    """Import circles inside one service: strongly connected components (Tarjan) of more than one
    module, or a module importing itself. Packages' ``__init__`` are left out (a module's import of its
    own package is how Python finds it, not a dependency)."""
    edges = {m: {t for t in ts if t in graph and t != m and service_of(t) == service_of(m)
                 and not m.startswith(f"{t}.")}
             for m, ts in graph.items() if service_of(m)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


WINGS = "services.supervision."


def wing_of(module: str) -> str | None:
    return module.removeprefix(WINGS).split(".")[0] if module.startswith(WINGS) else None


def wrong_way_wing_imports(graph: Graph) -> list[str]:
    """cases and warnings never import levels; cases never imports warnings."""
    forbidden = {("cases", "levels"), ("warnings", "levels"), ("cases", "warnings")}
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if (wing_of(m), wing_of(t)) in forbidden)


# ---------------------------------------------------------------------------------------- the tree


GRAPH = build_graph(REPO)


def test_the_graph_reads_the_tree() -> None:
    assert "hotline.commands" in GRAPH and "services.supervision.cases.lifecycle" in GRAPH
    assert "services.supervision.cases.lifecycle" in GRAPH["services.supervision.cases.commands"]
    assert sum(map(len, GRAPH.values())) > 200  # edges were found, the checks below are not vacuous


def test_the_kit_imports_nothing_from_services() -> None:
    assert kit_imports_services(GRAPH) == []


def test_no_service_imports_another() -> None:
    assert cross_service_imports(GRAPH) == []


def test_no_import_circle_inside_a_service() -> None:
    assert circles(GRAPH) == []


def test_supervisions_wings_import_one_way() -> None:
    assert wrong_way_wing_imports(GRAPH) == []


# ---------------------------------------------------------------------------------------- a bad tree


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")


def test_each_check_fails_on_a_deliberately_bad_tree(tmp_path: Path) -> None:
    write(tmp_path, {
        "hotline/__init__.py": "",
        "hotline/kit.py": "def entry():\n    from services.a.core import x\n",  # inside a function: still counts
        "services/__init__.py": "",
        "services/a/__init__.py": "",
        "services/a/core.py": "from services.a import desk\nx = 1\n",
        "services/a/desk.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from services.a.handlers import h\n",
        "services/a/handlers.py": "from .core import x\nh = 1\n",  # relative import closes the circle
        "services/b/__init__.py": "",
        "services/b/main.py": "import hotline.kit\nfrom services.a.core import x\n",
        "services/supervision/__init__.py": "",
        "services/supervision/cases/__init__.py": "",
        "services/supervision/cases/core.py": "from services.supervision.warnings import rules\n",
        "services/supervision/warnings/__init__.py": "",
        "services/supervision/warnings/rules.py": "from services.supervision.levels.escalation import e\n",
        "services/supervision/levels/__init__.py": "",
        "services/supervision/cases/store.py": "",
        "services/supervision/levels/escalation.py": "from services.supervision.cases import store\ne = 1\n",
    })
    graph = build_graph(tmp_path)
    assert kit_imports_services(graph) == ["hotline.kit -> services.a.core"]
    assert cross_service_imports(graph) == ["services.b.main -> services.a.core"]
    assert circles(graph) == [["services.a.core", "services.a.desk", "services.a.handlers"]]
    assert wrong_way_wing_imports(graph) == [
        "services.supervision.cases.core -> services.supervision.warnings.rules",
        "services.supervision.warnings.rules -> services.supervision.levels.escalation"]
    # the good direction passes: levels may import cases and warnings
    assert graph["services.supervision.levels.escalation"] == {"services.supervision.cases.store"}
