"""Check a data map against the live stores it names (introspection).

For each store with a registered inspector (``hooks.inspector_register``) and reachable now:
collections (tables) and fields (columns) exist as written — with the close name suggested —,
each field's erasure strategy fits its column (type, length, NOT NULL) and references join
columns of compatible types. The column facts found are kept on the field specs
(``FieldSpec.column``) so that strategies can fit their output at erasure time.

A store that cannot be reached is a warning (``strict``: an error): the map may be loaded on a
host that does not reach every store, and ``--offline`` skips the inspection altogether.
"""

from __future__ import annotations

import difflib

from governance.datamap import hooks
from governance.datamap.hooks import ColumnInfo, SchemaNote, StoreNotInspectable
from governance.datamap.spec import StoreSpec, env_resolve

# Kinds a reference can join on without losing matches (values are converted to the column type).
_NUMERIC = {hooks.KIND_INTEGER, hooks.KIND_NUMBER}


def _fields_path(store: StoreSpec, collection: str, field: str | None = None) -> tuple:
    path = ("stores", store.key, "collections", collection)
    return path + ("fields", field) if field else path


def column_lookup(name: str, columns: dict[str, ColumnInfo], *, where: str) -> tuple[ColumnInfo | None, str]:
    """The column called ``name``, or None and a message suggesting the close name."""
    column = columns.get(name)
    if column is not None:
        return column, ""
    message = f"column {name!r} not found in {where}"
    same_case = [c for c in columns if c.lower() == name.lower()]
    if same_case:
        return None, (f"{message}; it is spelled {same_case[0]!r} (names are case-sensitive): "
                      f"rename the field to {same_case[0]}")
    close = difflib.get_close_matches(name, list(columns), n=1, cutoff=0.6)
    if close:
        return None, f"{message}; did you mean {close[0]!r}?"
    return None, f"{message}; its columns are: {', '.join(sorted(columns))}"


def store_schema_notes(store: StoreSpec, *, strict: bool = False,
                       settings: dict | None = None) -> list[SchemaNote]:
    """Inspect one store and check the spec against it (mutates ``FieldSpec.column``)."""
    inspector = hooks.inspector_for(store.type)
    if inspector is None:
        return []
    unreachable = hooks.ERROR if strict else hooks.WARNING
    store_path = ("stores", store.key)
    if settings is None:
        try:
            settings = env_resolve({**store.connection, **store.secrets})
        except KeyError as exc:
            return [SchemaNote(unreachable, f"schema not checked: environment variable {exc.args[0]} "
                                            "is not set", store_path)]
    try:
        schema = inspector(store, settings)
    except StoreNotInspectable as exc:
        return [SchemaNote(unreachable, f"schema not checked: {exc}", store_path)]
    notes = list(schema.notes)
    checkers = hooks.strategy_checkers() or {}
    for collection in store.collections:
        live = schema.collections.get(collection.name)
        if live is None:
            continue  # the inspector said why (missing table, wrong case)
        notes += [SchemaNote(n.severity, n.message, n.path or _fields_path(store, collection.name))
                  for n in live.notes]
        if live.columns is None:
            continue
        where = f"table {collection.options.get('table', collection.name)}"
        for f in collection.fields:
            path = _fields_path(store, collection.name, f.name)
            column, message = column_lookup(f.name, live.columns, where=where)
            if column is None:
                notes.append(SchemaNote(hooks.ERROR, message, path))
                continue
            f.column = column.as_dict()
            checker = checkers.get(f.effective_strategy)
            if checker is not None and isinstance(f.strategy_options, dict):
                said = f.effective_strategy if f.strategy else f"{f.effective_strategy} (the default for " \
                    "personal data; set a strategy)"
                for note in checker.column_problems(column, dict(f.strategy_options)):
                    notes.append(SchemaNote(note.severity, f"{said}: {note.message}", path + ("strategy",)))
        notes += primary_key_notes(store, collection, live)
    return notes


def primary_key_notes(store: StoreSpec, collection, live) -> list[SchemaNote]:
    """The declared ``primary_key`` must contain a key of the table (primary key, unique constraint
    or unique index): rows are read again, changed and deleted by it, one row per key."""
    declared = collection.primary_key
    if not declared or live.keys is None or live.columns is None or \
            any(name not in live.columns for name in declared):
        return []  # nothing declared, keys unknown, or a missing column (reported above)
    if any(set(key) <= set(declared) for key in live.keys):
        return []
    table = collection.options.get("table", collection.name)
    names = ", ".join(declared)
    path = _fields_path(store, collection.name, declared[0]) + ("primary_key",)
    risk = (f"primary_key {names} is not a key of table {table}: several rows can have the same {names}, "
            "so erasing one person's row by it would change other people's rows too")
    if not live.keys:
        return [SchemaNote(hooks.ERROR, f"{risk}; the table has no primary key and no unique constraint: "
                                        f"add one (ALTER TABLE {table} ADD PRIMARY KEY (…)) and declare it",
                           path)]
    real = live.keys[0]
    primary = {name for name, column in live.columns.items() if column.primary_key}
    what = "primary key" if set(real) == primary else "unique key"
    key = ", ".join(real)
    mapped = {f.name for f in collection.fields}
    missing = [name for name in real if name not in mapped]
    fix = f"declare `primary_key: true` on {key} (not on {names})"
    if missing:
        fix += "; add " + ", ".join(f"`{name}: {{primary_key: true}}`" for name in missing) + " to its fields"
    return [SchemaNote(hooks.ERROR, f"{risk}; the table's {what} is ({key}): {fix}", path)]


def reference_notes(stores: list[StoreSpec]) -> list[SchemaNote]:
    """References whose two columns (both introspected) cannot hold the same values."""
    fields = {f"{c.address}.{f.name}": f for s in stores for c in s.collections for f in c.fields}
    notes = []
    for store in stores:
        for collection in store.collections:
            for f in collection.fields:
                for ref in f.references:
                    target = fields.get(str(ref))
                    if target is None or not f.column or not target.column:
                        continue
                    mine, theirs = f.column["kind"], target.column["kind"]
                    if mine == theirs or {mine, theirs} <= _NUMERIC:
                        continue
                    path = _fields_path(store, collection.name, f.name) + ("references",)
                    text = (f"reference {ref!r}: {collection.address}.{f.name} is {f.column['type']} "
                            f"but {ref} is {target.column['type']}")
                    if hooks.KIND_STRING in {mine, theirs} and {mine, theirs} & _NUMERIC:
                        notes.append(SchemaNote(hooks.WARNING, text + "; values are converted, so text "
                                                "with leading zeros or spaces will not match", path))
                    else:
                        notes.append(SchemaNote(hooks.ERROR, text + "; these types never join: point the "
                                                "reference at a column of the same type", path))
    return notes


def datamap_schema_notes(stores: list[StoreSpec], *, strict: bool = False) -> list[SchemaNote]:
    """Inspect every store of the map; every problem at once."""
    notes: list[SchemaNote] = []
    for store in stores:
        notes += store_schema_notes(store, strict=strict)
    return notes + reference_notes(stores)
