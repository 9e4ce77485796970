"""``sql``: PostgreSQL, MariaDB/MySQL (PyMySQL) and SQLite through SQLAlchemy Core.

Statements are built with SQLAlchemy expressions, so every value is a bound parameter.
Settings: ``url`` (SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host/db``,
``mysql+pymysql://root@127.0.0.1/shop``, ``sqlite:///var/demo/shop.sqlite3``).
Collection options: ``table`` (default: the collection name), ``schema``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dsr.connectors import register
from dsr.connectors.base import BaseConnector, StoreError, StoreUnavailable
from governance.datamap.spec import CollectionSpec

IN_CHUNK = 500
_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()
_tables: dict[tuple, sa.Table] = {}


def engine_for(url: str) -> sa.Engine:
    """One engine (connection pool) per URL and process."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            kwargs: dict = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs = {"connect_args": {"timeout": 30}}
            elif url.startswith("mysql"):
                kwargs["connect_args"] = {"connect_timeout": 5}
            elif url.startswith("postgresql"):
                kwargs["connect_args"] = {"connect_timeout": 5}
            engine = sa.create_engine(url, **kwargs)
            _engines[url] = engine
        return engine


def engines_dispose() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _tables.clear()


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return StoreUnavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return StoreUnavailable(f"connection lost: {str(exc).splitlines()[0][:300]}")
    return StoreError(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")


@register
class SqlConnector(BaseConnector):
    identifier = "sql"
    verbose_name = "SQL database (PostgreSQL, MariaDB/MySQL, SQLite)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        url = self.settings.get("url")
        if not url:
            raise StoreError(f"store {self.store_key!r}: the sql connector needs connection.url")
        self.engine = engine_for(url)

    def _table(self, collection: CollectionSpec) -> sa.Table:
        """The reflected table (cached per process), so values are bound with the column types."""
        options = collection.options
        name, schema = options.get("table", collection.name), options.get("schema")
        cache_key = (self.engine.url.render_as_string(hide_password=False), schema, name)
        table = _tables.get(cache_key)
        if table is None:
            try:
                table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=self.engine)
            except sa_exc.NoSuchTableError as exc:
                raise StoreError(f"{collection.address}: table {name!r} does not exist") from exc
            except sa_exc.SQLAlchemyError as exc:
                raise _translate(exc) from exc
            _tables[cache_key] = table
        missing = [f.name for f in collection.fields if f.name not in table.c]
        if missing:
            raise StoreError(f"{collection.address}: table {name!r} has no column(s) {', '.join(missing)}")
        return table

    @staticmethod
    def _coerce(column: sa.Column, values: list) -> list:
        """Convert input values to the column's Python type; drop those that cannot match."""
        try:
            kind = column.type.python_type
        except NotImplementedError:
            return values
        out = []
        for value in values:
            if isinstance(value, kind):
                out.append(value)
                continue
            try:
                out.append(kind(value))
            except (TypeError, ValueError, ArithmeticError):
                continue
        return out

    def _columns(self, table: sa.Table, collection: CollectionSpec) -> list[sa.Column]:
        # Only the fields the data map knows: the map, not the schema, says what is personal data.
        return [table.c[f.name] for f in collection.fields]

    def test_connection(self) -> str:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.literal(1)))
        except sa_exc.SQLAlchemyError as exc:
            raise _translate(exc) from exc
        return f"{self.engine.dialect.name} reachable"

    def retrieve(self, collection: CollectionSpec, inputs: dict[str, list]) -> Iterator[dict]:
        table = self._table(collection)
        pk = collection.primary_key
        seen: set = set()
        try:
            with self.engine.connect() as conn:
                for name, values in inputs.items():
                    column = table.c[name]
                    values = sorted(set(self._coerce(column, [v for v in values if v is not None])), key=str)
                    for start in range(0, len(values), IN_CHUNK):
                        chunk = values[start : start + IN_CHUNK]
                        stmt = sa.select(*self._columns(table, collection)).where(column.in_(chunk))
                        for row in conn.execute(stmt).mappings():
                            ident = tuple(row[k] for k in pk) if pk else tuple(row.items())
                            if ident in seen:
                                continue
                            seen.add(ident)
                            yield dict(row)
        except sa_exc.SQLAlchemyError as exc:
            raise _translate(exc) from exc

    def _where(self, table: sa.Table, key: dict):
        if not key:
            raise StoreError("rows of sql collections need a primary_key field in the data map")
        clauses = []
        for name, value in key.items():
            coerced = self._coerce(table.c[name], [value])
            if not coerced:
                raise StoreError(f"key value of {name} does not fit the column type")
            clauses.append(table.c[name] == coerced[0])
        return sa.and_(*clauses)

    def mask(self, collection: CollectionSpec, plans: Iterable) -> int:
        table = self._table(collection)
        changed = 0
        try:
            with self.engine.begin() as conn:
                for plan in plans:
                    result = conn.execute(sa.update(table).where(self._where(table, plan.key)).values(**plan.values))
                    changed += result.rowcount or 0
        except sa_exc.SQLAlchemyError as exc:
            raise _translate(exc) from exc
        return changed

    def delete(self, collection: CollectionSpec, plans: Iterable) -> int:
        table = self._table(collection)
        deleted = 0
        try:
            with self.engine.begin() as conn:
                for plan in plans:
                    result = conn.execute(sa.delete(table).where(self._where(table, plan.key)))
                    deleted += result.rowcount or 0
        except sa_exc.SQLAlchemyError as exc:
            raise _translate(exc) from exc
        return deleted
