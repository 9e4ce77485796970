"""``sql``: PostgreSQL, MariaDB/MySQL (PyMySQL) and SQLite through SQLAlchemy Core.

Statements are built with SQLAlchemy expressions, so every value is a bound parameter.
Settings: ``url`` (SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host/db``,
``mysql+pymysql://root@127.0.0.1/shop``, ``sqlite:///var/demo/shop.sqlite3``).
Collection options: ``table`` (default: the collection name), ``schema``.

Identity matching (docs/datamap.md, "Identity matching"): e-mail fields are searched with
``lower(trim(column)) IN (…)`` — index it with ``CREATE INDEX … ON t (lower(trim(email)))`` on
PostgreSQL and SQLite; on SQLite, whose ``lower()`` folds only ASCII, addresses with other letters
are compared by a Python function registered on the connection. Phone fields are searched with
``trim(column) IN (every format of the number)``. On MariaDB/MySQL, whose default collations
already ignore case and trailing spaces, a case-insensitive PAD SPACE column is searched with
``col IN (…) OR (col LIKE ' %' AND lower(trim(col)) IN (…))``: one range scan of the column's
plain index. Every row found is checked again in Python (same address, same E.164 number), so a
near miss or an accent-insensitive collation never matches.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dsr.connectors import register
from dsr.connectors.base import (
    BaseConnector,
    IdentityMatch,
    StoreError,
    StoreUnavailable,
    identity_matches,
)
from governance.datamap.spec import CollectionSpec
from governance.subjects.identities import email_fold

IN_CHUNK = 500
_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()
_tables: dict[tuple, sa.Table] = {}
_collations: dict[tuple, dict[str, str]] = {}


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
            if url.startswith("sqlite"):
                sa.event.listen(engine, "connect", _sqlite_functions)
            _engines[url] = engine
        return engine


SQLITE_EMAIL_KEY = "mamoru_email_key"


def _sqlite_email_key(value):
    return None if value is None else email_fold(value)


def _sqlite_functions(dbapi_connection, _record) -> None:
    """SQLite's lower() folds ASCII only: non-ASCII addresses are compared by this function."""
    dbapi_connection.create_function(SQLITE_EMAIL_KEY, 1, _sqlite_email_key, deterministic=True)


def engines_dispose() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _tables.clear()
        _collations.clear()


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
        if table is not None and any(f.name not in table.c for f in collection.fields):
            table = None  # cached before the table (or the data map) changed: reflect again
        if table is None:
            try:
                with warnings.catch_warnings():
                    # SQLite: the documented lower(trim(email)) index is not reflected (nor needed).
                    warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based",
                                            category=sa_exc.SAWarning)
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

    def _collation(self, conn: sa.Connection, column: sa.Column) -> str:
        """MariaDB/MySQL: the column's collation (cached per table), "" elsewhere."""
        if self.engine.dialect.name not in {"mysql", "mariadb"}:
            return ""
        table = column.table
        key = (self.engine.url.render_as_string(hide_password=False), table.schema, table.name)
        if key not in _collations:
            rows = conn.execute(sa.text(
                "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name"
            ), {"schema": table.schema, "name": table.name})
            _collations[key] = {str(r[0]): str(r[1] or "") for r in rows}
        return _collations[key].get(column.name, "")

    def _conditions(self, conn: sa.Connection, column: sa.Column,
                    match: IdentityMatch) -> Iterator[tuple[object, bool]]:
        """WHERE clauses (chunked) for one input field; the flag says whether rows need the
        Python check of :meth:`IdentityMatch.accepts` (normalised matches)."""
        try:
            textual = column.type.python_type is str
        except NotImplementedError:
            textual = False
        if not match.kind or not textual:
            # Exact (ids, references, numeric phone columns): the values as the column's type.
            candidates = match.values if not match.kind else [*match.values, *match.forms]
            values = sorted(set(self._coerce(column, candidates)), key=str)
            for start in range(0, len(values), IN_CHUNK):
                yield column.in_(values[start : start + IN_CHUNK]), bool(match.kind)
            return
        collation = self._collation(conn, column)
        # MariaDB/MySQL PAD SPACE collations ignore trailing spaces; *_ci ones ignore case.
        padded = bool(collation) and "nopad" not in collation and "0900" not in collation
        if padded and (match.kind == "phone" or collation.endswith("_ci")):
            expr = sa.func.trim(column) if match.kind == "phone" else sa.func.lower(sa.func.trim(column))
            for start in range(0, len(match.forms), IN_CHUNK):
                chunk = match.forms[start : start + IN_CHUNK]
                # Values with leading spaces are a range of the index too (prefix ' ').
                yield sa.or_(column.in_(chunk), sa.and_(column.like(" %"), expr.in_(chunk))), True
            return
        if match.kind == "phone":
            expr, forms = sa.func.trim(column), match.forms
        else:
            expr = sa.func.lower(sa.func.trim(column))
            forms = [f for f in match.forms if f.isascii()]
            others = [f for f in match.forms if not f.isascii()]
            if others and self.engine.dialect.name == "sqlite":
                keys = sorted(match.keys)
                for start in range(0, len(keys), IN_CHUNK):
                    yield getattr(sa.func, SQLITE_EMAIL_KEY)(column).in_(keys[start : start + IN_CHUNK]), True
            elif others:
                forms = match.forms
        for start in range(0, len(forms), IN_CHUNK):
            yield expr.in_(forms[start : start + IN_CHUNK]), True

    def retrieve(self, collection: CollectionSpec, inputs: dict[str, list]) -> Iterator[dict]:
        table = self._table(collection)
        pk = collection.primary_key
        seen: set = set()
        try:
            with self.engine.connect() as conn:
                for match in identity_matches(collection, inputs):
                    for condition, check in self._conditions(conn, table.c[match.name], match):
                        stmt = sa.select(*self._columns(table, collection)).where(condition)
                        for row in conn.execute(stmt).mappings():
                            if check and not match.accepts(row[match.name]):
                                continue  # e.g. an accent-insensitive collation's near miss
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

    def retrieve_by_key(self, collection: CollectionSpec, rows: list[dict]) -> Iterator[dict]:
        table = self._table(collection)
        pk = collection.primary_key
        if not pk:
            raise StoreError(f"{collection.address}: rows are re-read by key; the data map needs a primary_key")
        keys = []
        for row in rows:
            coerced = [self._coerce(table.c[name], [row.get(name)]) for name in pk]
            if all(coerced):
                keys.append(tuple(c[0] for c in coerced))
        keys = sorted(set(keys), key=str)
        try:
            with self.engine.connect() as conn:
                for start in range(0, len(keys), IN_CHUNK):
                    chunk = keys[start : start + IN_CHUNK]
                    if len(pk) == 1:
                        condition = table.c[pk[0]].in_([k[0] for k in chunk])
                    else:
                        condition = sa.or_(*[sa.and_(*[table.c[n] == v for n, v in zip(pk, k, strict=True)])
                                             for k in chunk])
                    stmt = sa.select(*self._columns(table, collection)).where(condition)
                    for found in conn.execute(stmt).mappings():
                        yield dict(found)
        except sa_exc.SQLAlchemyError as exc:
            raise _translate(exc) from exc
