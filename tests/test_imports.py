"""The shape of Redline's imports: no circles, a lean ``import redline``, an exact public surface.

Circles make import order matter (a name is missing when a half-initialised module is read) and
hide layering mistakes; a heavy ``import redline`` is paid by every command and agent start
(issue 12); ``__all__`` is a promise to users, so it changes only on purpose (as in httpx's
``test_exported_members``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import redline

SRC = Path(redline.__file__).resolve().parent.parent
PACKAGE = SRC / "redline"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: not in functions, not under TYPE_CHECKING."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                for handler in node.handlers:
                    walk(handler.body)
                walk(node.orelse)
                walk(node.finalbody)
            elif isinstance(node, (ast.With, ast.ClassDef)):
                walk(node.body)

    walk(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the redline modules its import runs (a package's ``__init__`` included)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if name in packages else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                modules = [base]
                modules += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files]
            for module in modules:
                if module.split(".")[0] != "redline":
                    continue
                # Importing a.b.c runs a and a.b first; the importer's own packages are already
                # running, so they are not edges.
                parts = module.split(".")
                for i in range(1, len(parts) + 1):
                    target = ".".join(parts[:i])
                    if target in files and not (name + ".").startswith(target + "."):
                        targets.add(target)
        graph[name] = targets - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_graph_sees_module_level_imports_only() -> None:
    """The graph builder itself: it finds a known edge and skips TYPE_CHECKING and functions."""
    graph = import_graph()
    assert "redline.config.schema" in graph["redline.config.checks"]
    assert "redline.server.config" in graph["redline.config.schema"]
    # redline.store.registry imports the config only for types: no edge.
    assert not any(t.startswith("redline.config") for t in graph["redline.store.registry"])
    # redline.config.checks imports the channel registry inside a function: no edge.
    assert "redline.alerts.channels" not in graph["redline.config.checks"]


def test_no_import_cycles() -> None:
    """No module-level circle among redline's modules (TYPE_CHECKING and function imports aside)."""
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


HEAVY = (
    "yaml",
    "cryptography",
    "httpx",
    "starlette",
    "psycopg",
    "prometheus_client",
    "opentelemetry",
)


@pytest.mark.parametrize("pure", [False, True], ids=["installed", "pure"])
def test_import_redline_is_lean(pure: bool) -> None:
    """``import redline`` in a fresh interpreter loads no heavy dependency and no alert channel."""
    env = dict(os.environ)
    env.pop("REDLINE_PURE_PYTHON", None)
    if pure:
        env["REDLINE_PURE_PYTHON"] = "1"
    code = "import json, sys, redline; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    channels = sorted(m for m in loaded if m.startswith("redline.alerts.channels"))
    assert heavy == []
    assert channels == []
    assert [m for m in loaded if m.startswith("redline.")] in ([], ["redline._compiled"])


def test_public_names_resolve_lazily_to_their_definitions() -> None:
    """Each public name, looked up on the package, is the object its module defines."""
    from redline.config import load_config
    from redline.exceptions import AgentStoppedError
    from redline.monitor import Monitor

    assert redline.Monitor is Monitor
    assert redline.load_config is load_config
    assert redline.AgentStoppedError is AgentStoppedError
    for name in redline.__all__:
        assert getattr(redline, name) is not None
    with pytest.raises(AttributeError):
        _ = redline.not_a_public_name  # type: ignore[attr-defined]


#: The public surface, as documented in ``redline/__init__.py`` (and nothing else).
PUBLIC = {
    "CATEGORIES",
    "EVENT_TYPES",
    "METRIC_NAMES",
    "AgentEvent",
    "AgentKilledError",
    "AgentStoppedError",
    "Alert",
    "Anomaly",
    "AnomalyAlert",
    "BudgetExceededError",
    "CausalTraceId",
    "ConfigError",
    "EventQuery",
    "EventType",
    "IntegrityError",
    "InvalidEventError",
    "KillRecord",
    "MetricSnapshot",
    "Monitor",
    "MonitorConfig",
    "RedlineError",
    "Store",
    "StoreError",
    "StoredEvent",
    "__version__",
    "category_of",
    "context",
    "current_trace",
    "load_config",
    "parse_config",
    "start_span",
    "Reservation",
    "BudgetState",
}


def test_all_is_exactly_the_documented_public_surface() -> None:
    """``redline.__all__`` is the documented list: no name lost, none added by accident."""
    assert len(redline.__all__) == len(set(redline.__all__))
    assert set(redline.__all__) == PUBLIC
    doc = redline.__doc__ or ""
    undocumented = [n for n in PUBLIC if f"``{n}``" not in doc]
    assert undocumented == []


def test_star_import_gives_every_public_name() -> None:
    """``from redline import *`` resolves every lazy name (none raises on first use)."""
    namespace: dict[str, object] = {}
    exec("from redline import *", namespace)
    assert set(namespace) >= PUBLIC
