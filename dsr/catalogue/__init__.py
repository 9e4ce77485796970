"""The SaaS connector catalogue: ready data-map stores for widely used services (docs/connectors.md).

Each service is one YAML file in this directory (``<slug>.yaml``): what the DPO enters
(``params``, ``secrets``), a summary for the catalogue table, and ``store`` — a data-map store of
type ``http`` (docs/datamap.md) whose strings may hold ``{{param}}`` (filled when the store is
added) and ``{{store}}`` (the new store's key, for references). Secrets are referenced from
``connection.auth`` as ``{name}`` and stay encrypted in the store's ``secrets``; the connector fills
them in when it connects. Adding a service is adding a file (plus its emulator and test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

CATALOGUE_DIR = Path(__file__).resolve().parent
TEMPLATE_VAR = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
SERVICE_KEYS = {"service", "name", "kind", "api_reference", "why", "summary", "params", "secrets", "store"}
SUMMARY_KEYS = ("finds", "erasure", "auth", "limits")


class CatalogueError(ValueError):
    """A catalogue template or the values entered for it are not usable (message says why)."""


@dataclass(frozen=True)
class CatalogueInput:
    name: str
    label: str
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class CatalogueService:
    slug: str
    name: str
    kind: str
    why: str
    api_reference: str
    summary: dict
    params: tuple[CatalogueInput, ...]
    secrets: tuple[CatalogueInput, ...]
    store: dict = field(repr=False)

    def collections(self) -> dict:
        return self.store.get("collections") or {}


def _inputs(raw, where: str) -> tuple[CatalogueInput, ...]:
    if raw in (None, {}):
        return ()
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: a mapping of name -> {{label, default}}")
    items = []
    for name, spec in raw.items():
        spec = spec or {}
        default = spec.get("default")
        items.append(CatalogueInput(str(name), str(spec.get("label") or name),
                                    None if default is None else str(default)))
    return tuple(items)


def service_parse(text: str, *, slug: str) -> CatalogueService:
    """One template file's text as a :class:`CatalogueService` (format errors: CatalogueError)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{slug}: not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CatalogueError(f"{slug}: a template is a mapping")
    unknown = set(raw) - SERVICE_KEYS
    if unknown:
        raise CatalogueError(f"{slug}: unknown keys {', '.join(sorted(unknown))}")
    if raw.get("service") != slug:
        raise CatalogueError(f"{slug}: 'service' must be the file name ({slug!r})")
    store = raw.get("store")
    if not isinstance(store, dict) or store.get("type", "http") != "http" or not store.get("collections"):
        raise CatalogueError(f"{slug}: 'store' must be an http store with collections")
    summary = raw.get("summary") or {}
    missing = [k for k in SUMMARY_KEYS if not summary.get(k)]
    if missing:
        raise CatalogueError(f"{slug}: summary needs {', '.join(missing)}")
    service = CatalogueService(
        slug=slug, name=str(raw.get("name") or slug), kind=str(raw.get("kind") or ""), why=str(raw.get("why") or ""),
        api_reference=str(raw.get("api_reference") or ""), summary={k: str(summary[k]) for k in SUMMARY_KEYS},
        params=_inputs(raw.get("params"), f"{slug}.params"), secrets=_inputs(raw.get("secrets"), f"{slug}.secrets"),
        store={"type": "http", **store},
    )
    names = {p.name for p in service.params} | {"store"}
    used = {m.group(1) for m in TEMPLATE_VAR.finditer(yaml.safe_dump(store))}
    if used - names:
        raise CatalogueError(f"{slug}: store uses {{{{{', '.join(sorted(used - names))}}}}} but params do not define it")
    return service


@lru_cache(maxsize=1)
def _load() -> dict[str, CatalogueService]:
    return {path.stem: service_parse(path.read_text(encoding="utf-8"), slug=path.stem)
            for path in sorted(CATALOGUE_DIR.glob("*.yaml"))}


def catalogue_services() -> dict[str, CatalogueService]:
    """Every service of the catalogue by slug (sorted)."""
    return dict(_load())


def catalogue_service(slug: str) -> CatalogueService:
    services = _load()
    if slug not in services:
        raise CatalogueError(f"no catalogue service {slug!r}; known: {', '.join(services)}")
    return services[slug]


def _render(value, variables: dict):
    if isinstance(value, str):
        return TEMPLATE_VAR.sub(lambda m: variables[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _render(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, variables) for v in value]
    return value


def catalogue_store_document(*, service: CatalogueService, key: str, params: dict, secrets: dict,
                             workspaces: list[str] | tuple = (), shared: bool | None = None,
                             allow_internal_hosts: bool = False, name: str = "", base_url: str = "") -> dict:
    """The data-map document (``{"version": 1, "stores": {key: …}}``) for one service.

    ``params``/``secrets``: what the DPO entered. Unknown names, missing required ones and empty
    secrets are refused (:class:`CatalogueError`) — all of them in one message. ``base_url``
    replaces the template's (a regional endpoint, a proxy, or an emulator in tests).
    """
    problems = []
    known_params = {p.name for p in service.params}
    known_secrets = {s.name for s in service.secrets}
    problems += [f"unknown parameter {n!r} (parameters: {', '.join(sorted(known_params)) or 'none'})"
                 for n in sorted(set(params) - known_params)]
    problems += [f"unknown secret {n!r} (secrets: {', '.join(sorted(known_secrets)) or 'none'})"
                 for n in sorted(set(secrets) - known_secrets)]
    values = {}
    for p in service.params:
        value = str(params.get(p.name) or "").strip() or p.default
        if not value:
            problems.append(f"parameter {p.name!r} is required ({p.label})")
        elif "{" in value or "}" in value or "${" in value:
            problems.append(f"parameter {p.name!r} may not contain braces")
        values[p.name] = value or ""
    for s in service.secrets:
        if not str(secrets.get(s.name) or "").strip():
            problems.append(f"secret {s.name!r} is required ({s.label})")
    if problems:
        raise CatalogueError(f"{service.slug}: " + "; ".join(problems))
    store = _render(service.store, {**values, "store": key})
    if name:
        store["name"] = name
    store["connection"] = dict(store.get("connection") or {})
    if base_url:
        store["connection"]["base_url"] = base_url.rstrip("/")
    if allow_internal_hosts:
        store["connection"]["allow_internal_hosts"] = True
    store["secrets"] = {s.name: str(secrets[s.name]).strip() for s in service.secrets}
    if workspaces:
        store["workspaces"] = list(workspaces)
    if shared is not None:
        store["shared"] = bool(shared)
    return {"version": 1, "stores": {key: store}}


def catalogue_source(slug: str) -> str:
    """What a store added from the catalogue records as where it was loaded from."""
    return f"catalogue:{slug}"
