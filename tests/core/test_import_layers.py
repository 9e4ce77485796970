"""Apps depend downward only: read every import (deferred ones inside functions included) and fail
on an import cycle between apps or an import that climbs a floor.

The floors are the ones drawn in docs/architecture.md. Imports under ``if TYPE_CHECKING:`` are
annotations, not dependencies, and are left out; migrations and tests are not app code.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. An app may import apps on lower floors only (never its own floor's neighbours).
FLOORS: list[tuple[str, ...]] = [
    ("governance.core",),  # shared helpers: api errors, registry, hash chains, charts, locking …
    ("governance.crypto",),  # envelope encryption, keys, blind indexes
    ("audit",),  # the audit kernel (encrypts sealed free text with crypto)
    ("governance.access",),  # roles and policy (knows workspaces by model label only)
    ("governance.subjects",),  # profiles, identities, workspaces
    ("governance.datamap",),  # stores, collections, fields
    ("oversight",),  # report/export framework, anomalies, dashboard: registries the domains fill
    ("governance.pii", "consent"),  # domains
    ("dsr",),  # requests (uses consent for opt-outs)
    ("governance.demo",),  # demo seeding and run_demo: may use everything
]
# The project's wiring (settings, URL conf, Celery app, WSGI/ASGI) names every app by design.
WIRING = {"governance.settings", "governance.urls", "governance.celery", "governance.wsgi", "governance.asgi"}
APPS = sorted((app for floor in FLOORS for app in floor if app != "governance.core"), key=len, reverse=True)
FLOOR_OF = {app: level for level, floor in enumerate(FLOORS) for app in floor}


def app_of(module: str) -> str | None:
    if module in WIRING or module.startswith("governance.settings"):
        return None
    for app in APPS:
        if module == app or module.startswith(app + "."):
            return app
    if module == "governance" or module.startswith("governance."):
        return "governance.core"
    return None


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(importing app, imported app) -> where, for every import between two different apps."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "tests", "bench", "var", "docs"} or "migrations" in rel.parts:
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        source = app_of(module)
        if source is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = app_of(name)
                if target and target != source:
                    edges[(source, target)].append(f"{rel}:{node.lineno}")
    return edges


def _cycles(edges) -> list[list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    found, seen = [], set()

    def walk(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in stack:
                cycle = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append(cycle)
            elif len(stack) < len(FLOOR_OF) + 1:
                walk(nxt, stack + [nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def test_every_app_is_on_a_floor():
    apps_with_code = {app_of(".".join(p.relative_to(ROOT).parts[:-1])) for p in ROOT.glob("*/apps.py")}
    apps_with_code |= {app_of(".".join(p.relative_to(ROOT).parts[:-1])) for p in ROOT.glob("governance/*/apps.py")}
    assert apps_with_code - set(FLOOR_OF) - {None} == set()


def test_no_import_cycle_between_apps():
    edges = import_edges()
    cycles = _cycles(edges)
    detail = []
    for cycle in cycles:
        hops = [f"{a} -> {b} ({', '.join(edges[(a, b)][:3])})" for a, b in zip(cycle, cycle[1:], strict=False)]
        detail.append(" ; ".join(hops))
    assert not cycles, "import cycles between apps:\n" + "\n".join(detail)


def test_apps_import_only_lower_floors():
    upward = [
        f"{source} (floor {FLOOR_OF[source]}) imports {target} (floor {FLOOR_OF[target]}): {', '.join(where[:3])}"
        for (source, target), where in sorted(import_edges().items())
        if FLOOR_OF[target] >= FLOOR_OF[source]
    ]
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)
