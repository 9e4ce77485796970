"""Live-schema inspectors for the data map (``load_datamap``, ``test_store``).

Registered into ``governance.datamap.hooks`` from ``DsrConfig.ready``:

- ``sql``: tables (and views) exist as written — a name that differs only in case gets the exact
  spelling to use —, columns with their type, length and NOT NULL (SQLAlchemy ``inspect``), the
  keys that identify a row (primary key, unique constraints and indexes) for the data map's
  ``primary_key``, and on PostgreSQL that e-mail columns can be lower-cased in every script
  (``PgFolding``). A SQLite URL whose file does not exist is reported, never created.
- ``redis``: the server answers; keys matching a collection's pattern have the declared type.
- ``http``: the API answers on its ``health_path``.
"""

from __future__ import annotations

import difflib
import warnings
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dsr.connectors import StoreError, StoreUnavailable, connector_class
from dsr.connectors.sql import CaseFoldingUnavailable, PgFolding
from governance.datamap import hooks
from governance.datamap.hooks import (
    CollectionSchema,
    ColumnInfo,
    SchemaNote,
    StoreNotInspectable,
    StoreSchema,
)
from governance.datamap.spec import StoreSpec

REDIS_SCAN_CALLS = 20
REDIS_TYPES = {"hash": "hash", "set": "set", "string": "string"}


def sqlite_missing_file(url: str) -> str | None:
    """The path of a SQLite URL's database file when that file does not exist (else None)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa_exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in {"", ":memory:"} or "mode=memory" in database:
        return None
    path = database[5:].split("?", 1)[0] if database.startswith("file:") else database
    return None if Path(path).exists() else path


def column_kind(type_: sa.types.TypeEngine) -> str:
    try:
        python = type_.python_type
    except NotImplementedError:
        return hooks.KIND_OTHER
    if python is bool:
        return hooks.KIND_BOOLEAN
    if python is int:
        return hooks.KIND_INTEGER
    if python in (float, Decimal):
        return hooks.KIND_NUMBER
    if python is str:
        return hooks.KIND_STRING
    if python is bytes:
        return hooks.KIND_BINARY
    if python in (dict, list):
        return hooks.KIND_JSON
    if python.__module__ == "datetime":
        return hooks.KIND_DATETIME
    return hooks.KIND_OTHER


def _type_name(type_: sa.types.TypeEngine, dialect) -> str:
    try:
        return type_.compile(dialect=dialect).lower()
    except sa_exc.SQLAlchemyError:
        return type(type_).__name__.lower()


def _table_hint(name: str, tables: list[str], *, dialect: str) -> str:
    same_case = [t for t in tables if t.lower() == name.lower()]
    if same_case:
        actual = same_case[0]
        folded = " (PostgreSQL folds unquoted names to lower case when a table is created)" \
            if dialect == "postgresql" else ""
        return (f"; the database has {actual!r}: names are matched exactly{folded}, "
                f"set options: {{table: {actual}}}")
    close = difflib.get_close_matches(name, tables, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}? (set options: {{table: {close[0]}}})"
    return f"; tables: {', '.join(sorted(tables)[:30]) or '(none)'}"


def sql_inspect(store: StoreSpec, settings: dict) -> StoreSchema:
    url = settings.get("url")
    if not url:
        raise StoreNotInspectable("connection.url is not set")
    missing = sqlite_missing_file(str(url))
    if missing:
        return StoreSchema(notes=[SchemaNote(
            hooks.ERROR, f"SQLite database file {missing} does not exist (connecting would create an "
                         "empty database); fix connection.url", ("stores", store.key, "connection", "url"))])
    connect_args = {} if str(url).startswith("sqlite") else {"connect_timeout": 5}
    try:
        engine = sa.create_engine(str(url), connect_args=connect_args)
    except (sa_exc.ArgumentError, ImportError) as exc:
        return StoreSchema(notes=[SchemaNote(hooks.ERROR, f"connection.url is not usable: {exc}",
                                             ("stores", store.key, "connection", "url"))])
    schema = StoreSchema(description=engine.dialect.name)
    try:
        inspector = sa.inspect(engine)
        listed: dict[str | None, list[str]] = {}
        views: dict[str | None, set[str]] = {}
        folding = PgFolding() if engine.dialect.name == "postgresql" else None
        for collection in store.collections:
            path = ("stores", store.key, "collections", collection.name)
            name = str(collection.options.get("table", collection.name))
            db_schema = collection.options.get("schema")
            if db_schema not in listed:
                try:
                    views[db_schema] = set(inspector.get_view_names(schema=db_schema))
                    listed[db_schema] = inspector.get_table_names(schema=db_schema) + sorted(views[db_schema])
                except sa_exc.OperationalError:
                    raise
                except sa_exc.SQLAlchemyError as exc:
                    schema.notes.append(SchemaNote(hooks.ERROR, f"schema {db_schema!r} cannot be read: "
                                                   f"{str(exc).splitlines()[0][:200]}", path + ("options",)))
                    listed[db_schema] = []
                    continue
            tables = listed[db_schema]
            if name not in tables:
                where = f" in schema {db_schema}" if db_schema else ""
                schema.notes.append(SchemaNote(
                    hooks.ERROR, f"table {name!r} not found{where}"
                                 f"{_table_hint(name, tables, dialect=engine.dialect.name)}", path))
                continue
            primary = set(inspector.get_pk_constraint(name, schema=db_schema).get("constrained_columns") or [])
            columns = {}
            for column in inspector.get_columns(name, schema=db_schema):
                type_ = column["type"]
                columns[column["name"]] = ColumnInfo(
                    name=column["name"], kind=column_kind(type_), type_name=_type_name(type_, engine.dialect),
                    length=getattr(type_, "length", None), nullable=bool(column.get("nullable", True)),
                    primary_key=column["name"] in primary,
                )
            live = CollectionSchema(columns=columns)
            if name in views.get(db_schema, set()):
                if collection.primary_key:
                    live.notes.append(SchemaNote(
                        hooks.WARNING, f"{name} is a view: its primary_key cannot be checked against a table "
                                       "key; an erasure that would change several rows by one key fails",
                        path + ("fields", collection.primary_key[0], "primary_key")))
            else:
                live.keys = _row_keys(inspector, name, db_schema)
            if folding is not None:
                live.notes += _case_folding_notes(engine, folding, collection, name, db_schema, columns, path)
            schema.collections[collection.name] = live
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise StoreNotInspectable(f"{engine.dialect.name} not reachable: {str(exc).splitlines()[0][:200]}") \
            from exc
    finally:
        engine.dispose()
    return schema


def _row_keys(inspector, name: str, db_schema: str | None) -> list[tuple[str, ...]]:
    """The column sets that identify one row: primary key, unique constraints, unique indexes
    (not partial ones, nor on expressions)."""
    keys: list[tuple[str, ...]] = []
    primary = inspector.get_pk_constraint(name, schema=db_schema).get("constrained_columns") or []
    if primary:
        keys.append(tuple(primary))
    with warnings.catch_warnings():
        # SQLite: an index on an expression (lower(trim(email))) is skipped — it is not a row key.
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based",
                                category=sa_exc.SAWarning)
        try:
            uniques = inspector.get_unique_constraints(name, schema=db_schema)
        except NotImplementedError:
            uniques = []
        indexes = inspector.get_indexes(name, schema=db_schema)
    keys += [tuple(u["column_names"]) for u in uniques if u.get("column_names")]
    for index in indexes:
        columns = index.get("column_names") or []
        options = index.get("dialect_options") or {}
        partial = any(k.endswith("_where") and v is not None for k, v in options.items())
        if index.get("unique") and columns and None not in columns and not partial:
            keys.append(tuple(columns))
    return list(dict.fromkeys(keys))


def _case_folding_notes(engine, folding: PgFolding, collection, name: str, db_schema: str | None,
                        columns: dict[str, ColumnInfo], path: tuple) -> list[SchemaNote]:
    """PostgreSQL: e-mail identity columns must be comparable in every letter case."""
    notes = []
    with engine.connect() as conn:
        for f in collection.fields:
            column = columns.get(f.name)
            if f.identity != "email" or column is None or column.kind != hooks.KIND_STRING:
                continue
            try:
                folding.column_collation(conn, table=name, schema=db_schema, column=f.name)
            except CaseFoldingUnavailable as exc:
                notes.append(SchemaNote(hooks.ERROR, str(exc), path + ("fields", f.name, "identity")))
    return notes


def _connector(store: StoreSpec, settings: dict):
    try:
        return connector_class(store.type)(store_key=store.key, settings=settings)
    except StoreError as exc:
        raise StoreNotInspectable(str(exc)) from exc


def redis_inspect(store: StoreSpec, settings: dict) -> StoreSchema:
    from dsr.connectors.redis_store import PLACEHOLDER, _glob_escape_literal

    connector = _connector(store, settings)
    schema = StoreSchema(description="redis")
    try:
        connector.test_connection()
        for collection in store.collections:
            kind = collection.options.get("type", "hash")
            template = collection.options.get("key")
            schema.collections[collection.name] = CollectionSchema(columns=None)
            if not template or kind not in REDIS_TYPES:
                continue
            pattern = PLACEHOLDER.sub("*", _glob_escape_literal(str(template)))
            key, cursor = None, 0
            for _ in range(REDIS_SCAN_CALLS):
                cursor, keys = connector.client.scan(cursor=cursor, match=pattern, count=1000)
                if keys:
                    key = keys[0]
                    break
                if cursor == 0:
                    break
            if key is None:
                continue
            actual = connector.client.type(key)
            if actual != REDIS_TYPES[kind]:
                fix = (f"set options.type: {actual}" if actual in REDIS_TYPES
                       else "the redis connector reads hash, set and string keys")
                schema.notes.append(SchemaNote(
                    hooks.ERROR, f"keys matching {template!r} are of Redis type {actual}, not {kind}; {fix}",
                    ("stores", store.key, "collections", collection.name, "options")))
    except StoreUnavailable as exc:
        raise StoreNotInspectable(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - redis errors: report, do not crash the load
        raise StoreNotInspectable(f"redis: {exc}") from exc
    finally:
        connector.close()
    return schema


def http_inspect(store: StoreSpec, settings: dict) -> StoreSchema:
    connector = _connector(store, settings)
    try:
        message = connector.test_connection()
    except StoreUnavailable as exc:
        raise StoreNotInspectable(str(exc)) from exc
    except StoreError as exc:
        return StoreSchema(notes=[SchemaNote(hooks.ERROR, f"the API answered with an error: {exc}",
                                             ("stores", store.key, "connection"))])
    finally:
        connector.close()
    return StoreSchema(description=message,
                       collections={c.name: CollectionSchema(columns=None) for c in store.collections})


def inspectors_register() -> None:
    """Called from ``DsrConfig.ready``."""
    from dsr import connectors, masking

    hooks.strategies_provide(masking.strategy_registry)
    hooks.connector_types_provide(connectors.connector_types)
    hooks.inspector_register("sql", sql_inspect)
    hooks.inspector_register("redis", redis_inspect)
    hooks.inspector_register("http", http_inspect)
