"""The data map as plain data: parse and validate the YAML format (see docs/datamap.md).

Every problem is reported with the file, the key path (``stores.shop.collections.orders``) and,
when the YAML node is known, the line. All problems are collected before raising so that a user
fixes a file in one go.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError
from governance.datamap import hooks
from governance.datamap.taxonomy import IDENTITY_KINDS, category_is_known, category_is_personal

ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,62}$")
STORE_KEYS = {
    "type", "name", "description", "connection", "secrets", "retry", "collections", "workspaces", "shared",
}
COLLECTION_KEYS = {"description", "fields", "options", "after", "erase_after"}
FIELD_KEYS = {
    "category", "identity", "namespace", "primary_key", "references", "strategy",
    "strategy_options", "legal_basis", "retention", "description", "format",
}
#: How a phone identity field holds its numbers (``any``: unknown, every variant is searched).
PHONE_FORMATS = ("any", "e164", "international", "national", "digits")
BUILTIN_STRATEGIES = ("null", "hash", "hmac", "random_rewrite", "delete_row", "retain")
BUILTIN_CONNECTORS = ("sql", "redis", "http", "mamoru")

ERR_NOT_MAPPING = "must be a mapping"
ERR_UNKNOWN_KEY = "unknown key"
ERR_UNREACHABLE = "collection is unreachable: no identity field and no reference to a reachable collection"
ERR_CYCLE = "reference cycle"


@dataclass
class Problem:
    path: str
    message: str
    line: int | None = None
    severity: str = hooks.ERROR

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        label = "warning: " if self.severity == hooks.WARNING else ""
        return f"{where}: {label}{self.path}: {self.message}"


class DataMapInvalid(DomainError):
    code = "datamap_invalid"
    title = _("The data map is not valid.")

    def __init__(self, filename: str, problems: list[Problem]):
        self.filename = filename
        # In file order, so a user fixes them top to bottom.
        self.problems = problems = sorted(problems, key=lambda p: (p.line or 0, p.path))
        text = "\n".join(p.render(filename) for p in problems)
        super().__init__(text, extra={"problems": [p.__dict__ for p in problems]})


@dataclass
class FieldSpec:
    name: str
    category: str = ""
    identity: str = ""
    namespace: str = ""
    primary_key: bool = False
    references: list[str] = field(default_factory=list)
    strategy: str = ""
    strategy_options: dict = field(default_factory=dict)
    legal_basis: str = ""
    retention: str = ""
    description: str = ""
    #: Phone identity fields: the stored format (see PHONE_FORMATS); empty means ``any``.
    format: str = ""
    #: The live column as introspected when the map was loaded (kind, type, length, nullable);
    #: empty when loaded ``--offline`` or the store has no schema. Strategies fit their output to it.
    column: dict = field(default_factory=dict)

    @property
    def effective_strategy(self) -> str:
        """The erasure strategy: explicit, else ``null`` for personal data, else none."""
        if self.strategy:
            return self.strategy
        if self.primary_key or self.references:
            return ""
        return "null" if category_is_personal(self.category) else ""


@dataclass
class CollectionSpec:
    store: str
    name: str
    fields: list[FieldSpec]
    description: str = ""
    options: dict = field(default_factory=dict)
    #: ``store.collection`` addresses whose access runs first (no data flows; ordering only).
    after: list[str] = field(default_factory=list)
    #: ``store.collection`` addresses whose erasure runs first.
    erase_after: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.store}.{self.name}"

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def primary_key(self) -> list[str]:
        return [f.name for f in self.fields if f.primary_key]


@dataclass
class StoreSpec:
    key: str
    type: str
    collections: list[CollectionSpec]
    name: str = ""
    description: str = ""
    connection: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)
    retry: dict = field(default_factory=dict)
    #: Workspace slugs whose requests search this store (empty: see ``shared``).
    workspaces: list[str] = field(default_factory=list)
    #: True: every workspace's requests search it; None (not said): shared, with a warning.
    shared: bool | None = None

    def serves(self, workspace_slug: str | None) -> bool:
        """Whether a request of this workspace (None: of every workspace) searches the store."""
        if workspace_slug is None or self.shared or not self.workspaces:
            return True
        return workspace_slug in self.workspaces

    @property
    def owners(self) -> set[str] | None:
        """The workspaces that own the store, None when it is shared."""
        return None if self.shared or not self.workspaces else set(self.workspaces)


def env_resolve(value: Any, *, environ: dict | None = None) -> Any:
    """Replace ``${NAME}`` in strings (recursively) with the environment's value."""
    environ = os.environ if environ is None else environ
    if isinstance(value, str):
        def repl(match: re.Match) -> str:
            name = match.group(1)
            if name not in environ:
                raise KeyError(name)
            return environ[name]

        return ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: env_resolve(v, environ=environ) for k, v in value.items()}
    if isinstance(value, list):
        return [env_resolve(v, environ=environ) for v in value]
    return value


class _Lines:
    """Map key paths to line numbers through the composed YAML node tree."""

    def __init__(self, node: yaml.Node | None):
        self.node = node

    def line(self, path: tuple) -> int | None:
        node = self.node
        line = None
        for key in path:
            if not isinstance(node, yaml.MappingNode):
                break
            for k, v in node.value:
                if str(k.value) == str(key):
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                break
        return line


def known_strategies() -> tuple[str, ...]:
    checkers = hooks.strategy_checkers()
    # Nothing registered (dsr not installed): the built-in names still validate.
    return BUILTIN_STRATEGIES if checkers is None else tuple(sorted(checkers))


def known_connectors() -> tuple[str, ...]:
    types = hooks.connector_types()
    return BUILTIN_CONNECTORS if types is None else tuple(types)


def datamap_lines(text: str) -> _Lines:
    """Line numbers of a data map document's key paths (empty when it is not YAML)."""
    try:
        return _Lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return _Lines(None)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def duplicate_keys(node: yaml.Node | None) -> list[tuple[tuple, str, int, int]]:
    """Keys written twice in one mapping: (path of the mapping, key, first line, second line).

    PyYAML keeps the last value of a duplicated key without a word; the data map refuses them.
    Merge keys (``<<: *anchor``) are not duplicates: explicit keys override merged ones.
    """
    found: list[tuple[tuple, str, int, int]] = []
    constructor = yaml.constructor.SafeConstructor()
    seen_nodes: set[int] = set()

    def walk(current: yaml.Node, path: tuple) -> None:
        if id(current) in seen_nodes:  # an alias of a node already walked (or a recursive one)
            return
        seen_nodes.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, path + (index,))
            return
        if not isinstance(current, yaml.MappingNode):
            return
        first: dict = {}
        for key_node, value_node in current.value:
            if key_node.tag == _MERGE_TAG:
                continue
            label = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            try:
                key = constructor.construct_object(key_node, deep=True)
                hash(key)
            except (yaml.YAMLError, TypeError):
                key = ("unhashable", id(key_node))
            if key in first:
                found.append((path, label, first[key], key_node.start_mark.line + 1))
            else:
                first[key] = key_node.start_mark.line + 1
            walk(value_node, path + (label,))

    if node is not None:
        walk(node, ())
    return found


def datamap_parse(text: str, *, filename: str = "<datamap>") -> list[StoreSpec]:
    """Parse and validate a data map document; raise :class:`DataMapInvalid` listing problems."""
    stores, problems = datamap_read(text, filename=filename)
    if problems:
        raise DataMapInvalid(filename, problems)
    return stores


def datamap_read(text: str, *, filename: str = "<datamap>") -> tuple[list[StoreSpec], list[Problem]]:
    """Parse a data map document: the stores that could be read and every problem found.

    Only a document that is not a YAML mapping of stores raises :class:`DataMapInvalid`.
    """
    try:
        # Composed and constructed separately: constructing flattens merge keys in the nodes.
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataMapInvalid(
            filename, [Problem("(document)", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                               mark.line + 1 if mark else None)]
        ) from exc
    lines = _Lines(node)
    problems: list[Problem] = []

    def add(path: tuple, message: str) -> None:
        problems.append(Problem(".".join(str(p) for p in path) or "(document)", message, lines.line(path)))

    for path, key, first, second in duplicate_keys(node):
        # YAML keeps the last one: a second `Email:` would silently replace the identity field.
        problems.append(Problem(".".join(str(p) for p in path + (key,)),
                                f"duplicate key {key!r}: also defined at {filename}:{first}; YAML keeps only "
                                "the last one, which replaces the first — remove or merge one of them",
                                second))
    if not isinstance(data, dict):
        add((), "the document must be a mapping with 'version' and 'stores'")
        raise DataMapInvalid(filename, problems)
    for key in sorted(set(data) - {"version", "stores"}):
        add((key,), f"{ERR_UNKNOWN_KEY} (allowed: stores, version)")
    if data.get("version", 1) != 1:
        add(("version",), "only version 1 is supported")
    stores_raw = data.get("stores")
    if not isinstance(stores_raw, dict) or not stores_raw:
        add(("stores",), "must be a non-empty mapping of store keys to stores")
        raise DataMapInvalid(filename, problems)
    connectors = known_connectors()
    strategies = known_strategies()
    stores = []
    for store_key, raw in stores_raw.items():
        path = ("stores", store_key)
        if not KEY_RE.match(str(store_key)):
            add(path, "store keys are letters, digits, '_' or '-', starting with a letter")
        if not isinstance(raw, dict):
            add(path, ERR_NOT_MAPPING)
            continue
        for key in sorted(set(raw) - STORE_KEYS):
            add(path + (key,), f"{ERR_UNKNOWN_KEY} (allowed: {', '.join(sorted(STORE_KEYS))})")
        kind = raw.get("type")
        if kind not in connectors:
            add(path + ("type",), f"unknown connector type {kind!r}; known types: {', '.join(connectors)}")
        for block in ("connection", "secrets", "retry"):
            if not isinstance(raw.get(block, {}), dict):
                add(path + (block,), ERR_NOT_MAPPING)
        for name, value in (raw.get("secrets") or {}).items() if isinstance(raw.get("secrets"), dict) else []:
            if not isinstance(value, str):
                add(path + ("secrets", name), "secrets are strings")
        retry = raw.get("retry") if isinstance(raw.get("retry"), dict) else {}
        for name, value in retry.items():
            if name not in {"attempts", "backoff_seconds", "max_backoff_seconds"}:
                add(path + ("retry", name), f"{ERR_UNKNOWN_KEY} (allowed: attempts, backoff_seconds, max_backoff_seconds)")
            elif not isinstance(value, int | float) or value < (1 if name == "attempts" else 0):
                add(path + ("retry", name), "must be a non-negative number (attempts at least 1)")
        workspaces, shared = _store_scope(raw, path, add)
        colls_raw = raw.get("collections")
        collections = []
        if not isinstance(colls_raw, dict) or not colls_raw:
            add(path + ("collections",), "must be a non-empty mapping of collection names")
            colls_raw = {}
        for coll_name, craw in colls_raw.items():
            cpath = path + ("collections", coll_name)
            if not KEY_RE.match(str(coll_name)):
                add(cpath, "collection names are letters, digits, '_' or '-'")
            if not isinstance(craw, dict):
                add(cpath, ERR_NOT_MAPPING)
                continue
            for key in sorted(set(craw) - COLLECTION_KEYS):
                add(cpath + (key,), f"{ERR_UNKNOWN_KEY} (allowed: {', '.join(sorted(COLLECTION_KEYS))})")
            if not isinstance(craw.get("options", {}), dict):
                add(cpath + ("options",), ERR_NOT_MAPPING)
            fields_raw = craw.get("fields")
            fields = []
            if not isinstance(fields_raw, dict) or not fields_raw:
                add(cpath + ("fields",), "must be a non-empty mapping of field names")
                fields_raw = {}
            for fname, fraw in fields_raw.items():
                fpath = cpath + ("fields", fname)
                fraw = {} if fraw is None else fraw
                if not isinstance(fraw, dict):
                    add(fpath, ERR_NOT_MAPPING)
                    continue
                for key in sorted(set(fraw) - FIELD_KEYS):
                    add(fpath + (key,), f"{ERR_UNKNOWN_KEY} (allowed: {', '.join(sorted(FIELD_KEYS))})")
                spec = FieldSpec(
                    name=str(fname),
                    category=str(fraw.get("category") or ""),
                    identity=str(fraw.get("identity") or ""),
                    namespace=str(fraw.get("namespace") or ""),
                    primary_key=bool(fraw.get("primary_key", False)),
                    references=fraw.get("references") or [],
                    strategy=str(fraw.get("strategy") or "") if "strategy" in fraw else "",
                    strategy_options=fraw.get("strategy_options") or {},
                    legal_basis=str(fraw.get("legal_basis") or ""),
                    retention=str(fraw.get("retention") or ""),
                    description=str(fraw.get("description") or ""),
                    format=str(fraw.get("format") or ""),
                )
                if "strategy" in fraw and fraw["strategy"] is None:
                    # YAML reads a bare `null` as None: the user meant the "null" strategy.
                    spec.strategy = "null"
                if spec.category and not category_is_known(spec.category):
                    add(fpath + ("category",), f"unknown data category {spec.category!r} (see docs/datamap.md)")
                if spec.identity and spec.identity not in IDENTITY_KINDS:
                    add(fpath + ("identity",), f"unknown identity kind {spec.identity!r}; known: {', '.join(IDENTITY_KINDS)}")
                if spec.format and (spec.identity != "phone" or spec.format not in PHONE_FORMATS):
                    add(fpath + ("format",), f"format applies to phone identity fields: one of {', '.join(PHONE_FORMATS)}")
                if isinstance(spec.references, str):
                    spec.references = [spec.references]
                if not isinstance(spec.references, list):
                    add(fpath + ("references",), "must be a list of 'store.collection.field'")
                    spec.references = []
                if spec.strategy and spec.strategy not in strategies:
                    add(fpath + ("strategy",), f"unknown strategy {spec.strategy!r}; known: {', '.join(strategies)}")
                if spec.strategy == "retain" and not spec.legal_basis:
                    add(fpath + ("legal_basis",), "a 'retain' strategy needs a legal_basis (GDPR Art. 17(3))")
                if not isinstance(spec.strategy_options, dict):
                    add(fpath + ("strategy_options",), ERR_NOT_MAPPING)
                    spec.strategy_options = {}
                elif spec.effective_strategy in strategies:
                    for message in strategy_options_problems(spec.effective_strategy, spec.strategy_options):
                        add(fpath + ("strategy_options",), message)
                fields.append(spec)
            order = {}
            for key in ("after", "erase_after"):
                value = craw.get(key, [])
                value = [value] if isinstance(value, str) else value
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    add(cpath + (key,), "must be a list of 'store.collection'")
                    value = []
                order[key] = [str(v) for v in value]
            if any(f.effective_strategy for f in fields) and not any(f.primary_key for f in fields):
                add(cpath + ("fields",), "a collection with erasure strategies needs a primary_key field "
                    "(rows are changed and verified by key)")
            collections.append(
                CollectionSpec(
                    store=str(store_key), name=str(coll_name), fields=fields,
                    description=str(craw.get("description") or ""),
                    options=craw.get("options") if isinstance(craw.get("options"), dict) else {},
                    after=order["after"], erase_after=order["erase_after"],
                )
            )
        stores.append(
            StoreSpec(
                key=str(store_key), type=str(kind), collections=collections,
                name=str(raw.get("name") or store_key), description=str(raw.get("description") or ""),
                connection=raw.get("connection") if isinstance(raw.get("connection"), dict) else {},
                secrets=raw.get("secrets") if isinstance(raw.get("secrets"), dict) else {},
                retry=retry, workspaces=workspaces, shared=shared,
            )
        )
    from governance.datamap.graph import DataMapGraph

    # Graph checks run even when other keys have problems: every problem is reported at once.
    for path, message in DataMapGraph(stores).problems() + scope_problems(stores):
        add(path, message)
    return stores, problems


def strategy_options_problems(strategy: str, options: dict) -> list[str]:
    """What is wrong with a strategy's options (checked when the map loads, not mid-erasure)."""
    checker = (hooks.strategy_checkers() or {}).get(strategy)
    if checker is None:
        return []
    return [f"{strategy}: {message}" for message in checker.options_problems(dict(options))]


def _store_scope(raw: dict, path: tuple, add) -> tuple[list[str], bool | None]:
    workspaces = raw.get("workspaces", [])
    if isinstance(workspaces, str):
        workspaces = [workspaces]
    if not isinstance(workspaces, list) or not all(isinstance(w, str) and w for w in workspaces):
        add(path + ("workspaces",), "must be a list of workspace slugs")
        workspaces = []
    shared = raw.get("shared")
    if shared is not None and not isinstance(shared, bool):
        add(path + ("shared",), "must be true or false")
        shared = None
    if shared and workspaces:
        add(path + ("shared",), "a store is either shared or owned by 'workspaces', not both")
    if shared is False and not workspaces:
        add(path + ("workspaces",), "'shared: false' needs the list of workspaces that own the store")
    return [str(w) for w in workspaces], shared


def scope_problems(stores: list[StoreSpec]) -> list[tuple[tuple, str]]:
    """A reference must not lead out of the workspaces that search the referencing store."""
    by_key = {s.key: s for s in stores}
    found = []
    for store in stores:
        for collection in store.collections:
            for f in collection.fields:
                for ref in f.references:
                    target = by_key.get(str(ref).split(".", 1)[0])
                    if target is None or target.key == store.key or target.owners is None:
                        continue
                    # The workspaces whose requests search the referencing store but not the target.
                    missing = sorted(store.owners - target.owners) if store.owners is not None else None
                    if missing is None or missing:
                        who = "every workspace" if missing is None else ", ".join(missing)
                        found.append((
                            ("stores", store.key, "collections", collection.name, "fields", f.name,
                             "references"),
                            f"reference {ref!r}: store {target.key!r} is owned by "
                            f"{', '.join(sorted(target.owners))} but {store.key!r} is also searched for "
                            f"{who}; add them to {target.key}.workspaces or mark it 'shared: true'",
                        ))
    return found
