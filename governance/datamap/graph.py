"""The traversal graph of a data map.

Nodes are collections (``store.collection``). A field that ``references`` another collection's
field makes that collection its *parent*: the child is found with values read from the parent.
Seeds are collections with an identity field. Access runs parents before children; erasure runs
children before parents, so that a parent protected by foreign keys is changed last. A
collection's ``after`` / ``erase_after`` (imported from Fides' ``fides_meta``) add ordering
without data: its access (erasure) waits for theirs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from governance.datamap.spec import ERR_CYCLE, ERR_UNREACHABLE, CollectionSpec, StoreSpec


@dataclass(frozen=True)
class Link:
    parent: str  # store.collection
    parent_field: str
    child: str
    child_field: str


class DataMapGraph:
    """Nodes, links and orders of a list of stores."""

    def __init__(self, stores: list[StoreSpec]):
        self.stores = {s.key: s for s in stores}
        self.nodes: dict[str, CollectionSpec] = {
            c.address: c for s in stores for c in s.collections
        }
        self.links: list[Link] = []
        self._bad_refs: list[tuple[tuple, str]] = []
        for node in self.nodes.values():
            for f in node.fields:
                for ref in f.references:
                    path = ("stores", node.store, "collections", node.name, "fields", f.name, "references")
                    parts = str(ref).split(".")
                    if len(parts) != 3:
                        self._bad_refs.append((path, f"reference {ref!r} must be 'store.collection.field'"))
                        continue
                    target = self.nodes.get(f"{parts[0]}.{parts[1]}")
                    if target is None:
                        self._bad_refs.append((path, f"reference {ref!r}: no collection {parts[0]}.{parts[1]}"))
                        continue
                    if target.field(parts[2]) is None:
                        self._bad_refs.append((path, f"reference {ref!r}: collection has no field {parts[2]!r}"))
                        continue
                    self.links.append(Link(target.address, parts[2], node.address, f.name))
        #: (kind, first, then): ``then``'s access (kind "after") or erasure ("erase_after") waits.
        self.orderings: list[tuple[str, str, str]] = []
        for node in self.nodes.values():
            for kind in ("after", "erase_after"):
                for first in getattr(node, kind, []) or []:
                    path = ("stores", node.store, "collections", node.name, kind)
                    if first not in self.nodes:
                        self._bad_refs.append((path, f"{kind} {first!r}: no collection {first} "
                                                     "(write 'store.collection')"))
                    elif first == node.address:
                        self._bad_refs.append((path, f"{kind}: a collection cannot wait for itself"))
                    else:
                        self.orderings.append((kind, first, node.address))

    def waits_for(self, address: str, kind: str) -> list[str]:
        """The collections whose access (``after``) or erasure (``erase_after``) runs first."""
        return [first for k, first, then in self.orderings if k == kind and then == address]

    def parents(self, address: str) -> list[Link]:
        return [link for link in self.links if link.child == address]

    def children(self, address: str) -> list[Link]:
        return [link for link in self.links if link.parent == address]

    def seeds(self) -> list[str]:
        return [a for a, c in self.nodes.items() if any(f.identity for f in c.fields)]

    def reachable(self) -> set[str]:
        seen = set(self.seeds())
        frontier = list(seen)
        while frontier:
            node = frontier.pop()
            for link in self.children(node):
                if link.child not in seen:
                    seen.add(link.child)
                    frontier.append(link.child)
        return seen

    def cycles(self) -> list[list[str]]:
        """Return the reference cycles (each as a list of nodes), empty when acyclic."""
        found: list[list[str]] = []
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(node: str) -> None:
            state[node] = 1
            stack.append(node)
            for link in self.children(node):
                if state.get(link.child) == 1:
                    found.append(stack[stack.index(link.child):] + [link.child])
                elif link.child not in state:
                    visit(link.child)
            stack.pop()
            state[node] = 2

        for node in sorted(self.nodes):
            if node not in state:
                visit(node)
        return found

    def problems(self) -> list[tuple[tuple, str]]:
        problems = list(self._bad_refs)
        for address, node in self.nodes.items():
            if any(link.parent == address for link in self.parents(address)):
                problems.append((("stores", node.store, "collections", node.name), "a collection may not reference itself"))
        for kind in ("after", "erase_after"):
            edges = [(first, then) for k, first, then in self.orderings if k == kind]
            if kind == "after":
                edges += [(link.parent, link.child) for link in self.links]
            else:
                edges += [(link.child, link.parent) for link in self.links]
            if edges and any(k == kind for k, _, _ in self.orderings) and _topological(self.nodes, edges) is None:
                node = self.nodes[next(then for k, _, then in self.orderings if k == kind)]
                problems.append((("stores", node.store, "collections", node.name, kind),
                                 f"{ERR_CYCLE}: the '{kind}' ordering and the references wait for each other"))
        for cycle in self.cycles():
            if len(set(cycle)) > 1:
                first = self.nodes[cycle[0]]
                problems.append(
                    (("stores", first.store, "collections", first.name), f"{ERR_CYCLE}: {' -> '.join(cycle)}")
                )
        if not self._bad_refs:
            reachable = self.reachable()
            for address in sorted(set(self.nodes) - reachable):
                node = self.nodes[address]
                problems.append((("stores", node.store, "collections", node.name), ERR_UNREACHABLE))
        return problems

    def access_order(self) -> list[str]:
        """Topological order, parents first (stable by name); ``after`` ordering respected."""
        if any(k == "after" for k, _, _ in self.orderings):
            edges = [(link.parent, link.child) for link in self.links]
            edges += [(first, then) for k, first, then in self.orderings if k == "after"]
            order = _topological(self.nodes, edges)
            if order is not None:
                return order
        indegree = {a: 0 for a in self.nodes}
        for link in self.links:
            indegree[link.child] += 1
        ready = sorted(a for a, d in indegree.items() if d == 0)
        order = []
        while ready:
            node = ready.pop(0)
            order.append(node)
            for link in self.children(node):
                indegree[link.child] -= 1
                if indegree[link.child] == 0:
                    ready.append(link.child)
                    ready.sort()
        return order

    def erasure_order(self) -> list[str]:
        """Children before parents; ``erase_after`` ordering respected."""
        if any(k == "erase_after" for k, _, _ in self.orderings):
            edges = [(link.child, link.parent) for link in self.links]
            edges += [(first, then) for k, first, then in self.orderings if k == "erase_after"]
            order = _topological(self.nodes, edges)
            if order is not None:
                return order
        return list(reversed(self.access_order()))

    def levels(self) -> dict[str, int]:
        level: dict[str, int] = defaultdict(int)
        for node in self.access_order():
            for link in self.children(node):
                level[link.child] = max(level[link.child], level[node] + 1)
        return {a: level[a] for a in self.nodes}

    def svg(self) -> str:
        """Render the graph as a small layered SVG (parents left, children right)."""
        levels = self.levels()
        columns: dict[int, list[str]] = defaultdict(list)
        for node in sorted(self.nodes, key=lambda a: (levels[a], a)):
            columns[levels[node]].append(node)
        box_w, box_h, gap_x, gap_y = 210, 44, 80, 22
        pos = {}
        for col, nodes in columns.items():
            for row, node in enumerate(nodes):
                pos[node] = (20 + col * (box_w + gap_x), 20 + row * (box_h + gap_y))
        width = 40 + (max(columns, default=0) + 1) * (box_w + gap_x)
        height = 40 + max((len(v) for v in columns.values()), default=1) * (box_h + gap_y)
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="data map graph" '
            'font-family="sans-serif" font-size="12">',
            '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="10" refY="4" '
            'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>',
        ]
        for link in self.links:
            x1, y1 = pos[link.parent]
            x2, y2 = pos[link.child]
            parts.append(
                f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
                'stroke="#555" marker-end="url(#arrow)">'
                f"<title>{escape(link.child)}.{escape(link.child_field)} → "
                f"{escape(link.parent)}.{escape(link.parent_field)}</title></line>"
            )
        seeds = set(self.seeds())
        for node, (x, y) in pos.items():
            spec = self.nodes[node]
            fill = "#e3f2e1" if node in seeds else "#eef2f8"
            kind = self.stores[spec.store].type
            parts.append(
                f'<g><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" '
                'stroke="#345"/>'
                f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{escape(node)}</text>'
                f'<text x="{x + 8}" y="{y + 35}" fill="#555">{escape(kind)} · {len(spec.fields)} fields'
                f'{" · seed" if node in seeds else ""}</text></g>'
            )
        parts.append("</svg>")
        return "".join(parts)


def _topological(nodes, edges: list[tuple[str, str]]) -> list[str] | None:
    """Nodes with every ``(first, then)`` edge respected, stable by name; None on a cycle."""
    indegree = {a: 0 for a in nodes}
    after: dict[str, list[str]] = defaultdict(list)
    for first, then in set(edges):
        if first in indegree and then in indegree:
            indegree[then] += 1
            after[first].append(then)
    ready = sorted(a for a, d in indegree.items() if d == 0)
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for then in after[node]:
            indegree[then] -= 1
            if indegree[then] == 0:
                ready.append(then)
                ready.sort()
    return order if len(order) == len(indegree) else None
