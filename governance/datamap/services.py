"""Writes to the data map: load a YAML file into stores, collections and fields."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.db import transaction

from audit.services import CREATE, DELETE, UPDATE, change_record
from governance.crypto import envelope
from governance.datamap import hooks
from governance.datamap.graph import DataMapGraph
from governance.datamap.models import Collection, Field, Store
from governance.datamap.schema import datamap_schema_notes
from governance.datamap.spec import (
    DataMapInvalid,
    Problem,
    StoreSpec,
    datamap_lines,
    datamap_read,
    scope_problems,
)

WARN_SCOPE = ("no 'workspaces' and no 'shared': the store is searched for the requests of every "
              "workspace; say 'shared: true' or list the workspaces that own it")


@dataclass
class DataMapLoad:
    """What a load did: the stores saved and the warnings (problems that did not stop it)."""

    stores: list[Store]
    warnings: list[Problem] = field(default_factory=list)


def datamap_load_report(
    *, text: str, filename: str = "<datamap>", prune: bool = False, actor=None,
    offline: bool = False, strict: bool = False,
) -> DataMapLoad:
    """Validate a data map document against its live stores and replace the stores it defines.

    Every problem is collected first — format, graph, workspaces, and (unless ``offline``) the
    live schema of each reachable store — and reported at once as :class:`DataMapInvalid`.
    An unreachable store is a warning, an error with ``strict``. Stores already loaded from
    other files stay and take part in the graph checks; ``prune`` removes them.
    """
    specs, problems = datamap_read(text, filename=filename)
    lines = datamap_lines(text)

    def note(path: tuple, message: str, severity: str = hooks.ERROR) -> Problem:
        return Problem(".".join(map(str, path)) or "(document)", message, lines.line(path), severity)

    keys = {s.key for s in specs}
    others = [] if prune else [s.to_spec() for s in Store.objects.exclude(key__in=keys)]
    if others and not problems:
        combined = specs + others
        problems += [note(p, m) for p, m in DataMapGraph(combined).problems() + scope_problems(combined)]
    problems += [note(p, m) for p, m in _workspace_problems(specs)]
    warnings = [note(("stores", s.key), WARN_SCOPE, hooks.WARNING) for s in specs
                if s.shared is None and not s.workspaces and _workspace_count() > 1]
    if not offline:
        for item in datamap_schema_notes(specs, strict=strict):
            (problems if item.severity == hooks.ERROR else warnings).append(
                note(item.path, item.message, item.severity))
    if problems:
        raise DataMapInvalid(filename, problems)
    with transaction.atomic():
        if prune:
            for store in Store.objects.exclude(key__in=keys):
                change_record(actor=actor, obj=store, action=DELETE, note=f"pruned by {filename}")
                store.delete()
        stores = [_store_save(spec, filename=filename, actor=actor) for spec in specs]
    return DataMapLoad(stores=stores, warnings=sorted(warnings, key=lambda w: (w.line or 0, w.path)))


def datamap_load_text(
    *, text: str, filename: str = "<datamap>", prune: bool = False, actor=None,
    offline: bool = False, strict: bool = False,
) -> list[Store]:
    """Validate and load a data map document (see :func:`datamap_load_report`); the stores."""
    return datamap_load_report(text=text, filename=filename, prune=prune, actor=actor,
                               offline=offline, strict=strict).stores


def datamap_load(*, path: str | Path, prune: bool = False, actor=None, offline: bool = False,
                 strict: bool = False) -> DataMapLoad:
    """Load a data map file (see docs/datamap.md)."""
    path = Path(path)
    return datamap_load_report(text=path.read_text(encoding="utf-8"), filename=str(path), prune=prune,
                               actor=actor, offline=offline, strict=strict)


def _workspace_model():
    try:
        return apps.get_model("subjects", "Workspace")
    except LookupError:
        return None


def _workspace_count() -> int:
    model = _workspace_model()
    return model.objects.count() if model is not None else 0


def _workspace_problems(specs: list[StoreSpec]) -> list[tuple[tuple, str]]:
    """Workspaces named by stores must exist: a typo would keep a store out of every request."""
    model = _workspace_model()
    if model is None:
        return []
    known = set(model.objects.values_list("slug", flat=True))
    found = []
    for spec in specs:
        for slug in spec.workspaces:
            if slug in known:
                continue
            close = difflib.get_close_matches(slug, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known)) or '(none)'}"
            found.append((("stores", spec.key, "workspaces"), f"no workspace {slug!r}; {hint}"))
    return found


def _store_save(spec: StoreSpec, *, filename: str, actor) -> Store:
    store = Store.objects.filter(key=spec.key).first()
    created = store is None
    if created:
        store = Store(key=spec.key, data_key_id=envelope.data_key_create(owner="datamap.store"))
    store.name = spec.name
    store.description = spec.description
    store.connector_type = spec.type
    store.connection = spec.connection
    store.secrets = json.dumps(spec.secrets) if spec.secrets else None
    store.retry = spec.retry
    store.workspaces = list(spec.workspaces)
    store.shared = spec.shared
    store.source_file = filename[:500]
    store.save()
    store.collections.all().delete()
    for cpos, cspec in enumerate(spec.collections):
        collection = Collection.objects.create(
            store=store, name=cspec.name, description=cspec.description, options=cspec.options,
            after=list(cspec.after), erase_after=list(cspec.erase_after), position=cpos,
        )
        Field.objects.bulk_create(
            [
                Field(
                    collection=collection, name=f.name, category=f.category, identity=f.identity,
                    namespace=f.namespace, primary_key=f.primary_key, references=f.references,
                    strategy=f.strategy, strategy_options=f.strategy_options,
                    legal_basis=f.legal_basis, retention=f.retention, description=f.description,
                    format=f.format, column=f.column, position=fpos,
                )
                for fpos, f in enumerate(cspec.fields)
            ]
        )
    change_record(
        actor=actor, obj=store, action=CREATE if created else UPDATE,
        fields=["connection", "collections"] + (["secrets"] if spec.secrets else []),
        note=f"data map loaded from {filename}",
    )
    return store
