"""Writes to the data map: load a YAML file into stores, collections and fields."""

from __future__ import annotations

import json
from pathlib import Path

from django.db import transaction

from audit.services import CREATE, DELETE, UPDATE, change_record
from governance.crypto import envelope
from governance.datamap.graph import DataMapGraph
from governance.datamap.models import Collection, Field, Store
from governance.datamap.spec import DataMapInvalid, Problem, StoreSpec, datamap_parse


def datamap_load_text(
    *, text: str, filename: str = "<datamap>", prune: bool = False, actor=None
) -> list[Store]:
    """Validate a data map document and replace the stores it defines (atomically).

    Stores already loaded from other files stay and take part in the graph checks; with
    ``prune`` every store not in this document is removed.
    """
    specs = datamap_parse(text, filename=filename)
    keys = {s.key for s in specs}
    others = [] if prune else [s.to_spec() for s in Store.objects.exclude(key__in=keys)]
    problems = DataMapGraph(specs + others).problems()
    if problems:
        raise DataMapInvalid(
            filename, [Problem(".".join(map(str, p)), m) for p, m in problems]
        )
    with transaction.atomic():
        if prune:
            for store in Store.objects.exclude(key__in=keys):
                change_record(actor=actor, obj=store, action=DELETE, note=f"pruned by {filename}")
                store.delete()
        return [_store_save(spec, filename=filename, actor=actor) for spec in specs]


def datamap_load(*, path: str | Path, prune: bool = False, actor=None) -> list[Store]:
    """Load a data map file (see docs/datamap.md)."""
    path = Path(path)
    return datamap_load_text(text=path.read_text(encoding="utf-8"), filename=str(path), prune=prune, actor=actor)


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
    store.source_file = filename[:500]
    store.save()
    store.collections.all().delete()
    for cpos, cspec in enumerate(spec.collections):
        collection = Collection.objects.create(
            store=store, name=cspec.name, description=cspec.description, options=cspec.options,
            position=cpos,
        )
        Field.objects.bulk_create(
            [
                Field(
                    collection=collection, name=f.name, category=f.category, identity=f.identity,
                    namespace=f.namespace, primary_key=f.primary_key, references=f.references,
                    strategy=f.strategy, strategy_options=f.strategy_options,
                    legal_basis=f.legal_basis, retention=f.retention, description=f.description,
                    position=fpos,
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
