"""``sql``: PostgreSQL, MariaDB/MySQL (PyMySQL) and SQLite through SQLAlchemy Core.

Statements are built with SQLAlchemy expressions, so every value is a bound parameter.
Settings: ``url`` (SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host/db``,
``mysql+pymysql://root@127.0.0.1/shop``, ``sqlite:///var/demo/shop.sqlite3``).
Collection options: ``table`` (default: the collection name), ``schema``.

Identity matching (docs/datamap.md, "Identity matching"): e-mail fields are searched with
``lower(trim(column)) IN (…)`` — index it with ``CREATE INDEX … ON t (lower(trim(email)))`` on
PostgreSQL and SQLite; on SQLite, whose ``lower()`` folds only ASCII, addresses with other letters
are compared by a Python function registered on the connection. On PostgreSQL a column whose
``lower()`` folds only ASCII (database ``LC_CTYPE 'C'``, column ``COLLATE "C"``) is compared as
``lower(trim(col) COLLATE "und-x-icu")`` (:class:`PgFolding`; index that expression). Phone fields are searched with
``trim(column) IN (every format of the number)``. On MariaDB/MySQL, whose default collations
already ignore case and trailing spaces, a case-insensitive PAD SPACE column is searched with
``col IN (…) OR (col LIKE ' %' AND lower(trim(col)) IN (…))``: one range scan of the column's
plain index. Every row found is checked again in Python (same address, same E.164 number), so a
near miss or an accent-insensitive collation never matches.

Changes are made by the data map's row key, one row per key: a statement that would affect more
than one row rolls back and fails the node (the key is not unique in the table).
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
        _pg_foldings.clear()


# --- PostgreSQL: case folding that does not depend on the database's lc_ctype -----------------

#: lower() of a collation that folds every script turns the first into the second.
FOLD_PROBE = ("ŁÓЖ", "łóж")
#: A built-in collation whose lower() folds every script, by preference (ICU's root first).
_UNICODE_COLLATIONS_SQL = """
    SELECT c.collname FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
    WHERE n.nspname = 'pg_catalog'
      AND c.collencoding IN (-1, (SELECT encoding FROM pg_database WHERE datname = current_database()))
      AND (c.collprovider = 'i' OR (c.collprovider = 'c' AND c.collctype NOT IN ('C', 'POSIX')))
    ORDER BY c.collname <> 'und-x-icu', c.collprovider <> 'i', c.collname NOT IN ('C.utf8', 'C.UTF-8'),
             c.collname
    LIMIT 5
"""
_COLUMN_COLLATIONS_SQL = """
    SELECT a.attname, n.nspname, c.collname FROM pg_attribute a
    JOIN pg_collation c ON c.oid = a.attcollation JOIN pg_namespace n ON n.oid = c.collnamespace
    WHERE a.attrelid = CAST(:relation AS regclass) AND a.attnum > 0 AND NOT a.attisdropped
"""


class CaseFoldingUnavailable(StoreError):
    """lower() on the column folds only ASCII and the server has no collation that folds more."""


class PgFolding:
    """How to lower-case a PostgreSQL text column for every script, whatever the database's ctype.

    A database created with ``LC_CTYPE 'C'`` (or a column declared ``COLLATE "C"``) has a
    ``lower()`` that folds only ASCII: ``ŁUKASZ@WP.PL`` stays ``Łukasz@wp.pl``. Such a column is
    compared as ``lower(trim(col) COLLATE "und-x-icu")`` (ICU's root collation; else another
    built-in collation whose ``lower()`` folds every script, e.g. ``C.utf8``). Whether a collation
    folds is asked from the server (``FOLD_PROBE``), not guessed from its name.
    """

    def __init__(self):
        self._folds: dict[str, bool] = {}
        self._columns: dict[tuple, dict[str, str]] = {}
        self._unicode: list[str | None] = []

    @staticmethod
    def _quote(conn: sa.Connection, *names: str) -> str:
        quote = conn.dialect.identifier_preparer.quote_identifier
        return ".".join(quote(n) for n in names)

    def _collation_folds(self, conn: sa.Connection, collation: str) -> bool:
        if collation not in self._folds:
            self._folds[collation] = bool(conn.execute(
                sa.text(f"SELECT lower(CAST(:probe AS text) COLLATE {collation}) = :folded"),
                {"probe": FOLD_PROBE[0], "folded": FOLD_PROBE[1]}).scalar())
        return self._folds[collation]

    def unicode_collation(self, conn: sa.Connection) -> str | None:
        """The name of a built-in collation whose lower() folds every script (None: none)."""
        if not self._unicode:
            names = [str(r[0]) for r in conn.execute(sa.text(_UNICODE_COLLATIONS_SQL))]
            self._unicode.append(next((n for n in names if self._collation_folds(conn, self._quote(conn, n))), None))
        return self._unicode[0]

    def column_collation(self, conn: sa.Connection, *, table: str, schema: str | None, column: str) -> str:
        """"" when ``lower(col)`` folds every script, else the collation to compare it in.

        Raises :class:`CaseFoldingUnavailable` (with what to do) when the server has none."""
        key = (schema, table)
        if key not in self._columns:
            preparer = conn.dialect.identifier_preparer
            relation = (f"{preparer.quote_schema(schema)}." if schema else "") + preparer.quote(table)
            rows = conn.execute(sa.text(_COLUMN_COLLATIONS_SQL), {"relation": relation})
            self._columns[key] = {str(r[0]): self._quote(conn, str(r[1]), str(r[2])) for r in rows}
        own = self._columns[key].get(column)
        if own is None or self._collation_folds(conn, own):
            return ""  # not a collatable (text) column, or its lower() folds every script
        unicode = self.unicode_collation(conn)
        if unicode is not None:
            return unicode
        if own == self._quote(conn, "pg_catalog", "default"):
            row = conn.execute(sa.text("SELECT current_database(), datctype FROM pg_database "
                                       "WHERE datname = current_database()")).one()
            cause = f"database {row[0]} has lc_ctype {row[1]}"
            fix = "create the database with a UTF-8 locale (LC_CTYPE 'C.UTF-8') or install ICU"
        else:
            cause = f"column {table}.{column} has collation {own}"
            fix = "give the column a UTF-8 collation or install ICU"
        raise CaseFoldingUnavailable(
            f"{cause}: non-ASCII e-mails cannot be matched case-insensitively (lower() folds only "
            f"ASCII and the server has no Unicode-aware collation); {fix}")


_pg_foldings: dict[str, PgFolding] = {}


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

    def _pg_folding(self) -> PgFolding:
        with _engines_lock:
            return _pg_foldings.setdefault(self.engine.url.render_as_string(hide_password=False), PgFolding())

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
            if self.engine.dialect.name == "postgresql":
                # lower() folds only ASCII under a "C" ctype: compare in a collation that folds all.
                try:
                    unicode = self._pg_folding().column_collation(
                        conn, table=column.table.name, schema=column.table.schema, column=column.name)
                except CaseFoldingUnavailable as exc:
                    if others:
                        raise StoreError(f"{self.store_key}: {exc}") from exc
                    unicode = ""
                if unicode:
                    expr = sa.func.lower(sa.collate(sa.func.trim(column), unicode))
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

    @staticmethod
    def _one_row(collection: CollectionSpec, key: dict, result, verb: str) -> int:
        """The rows a statement by row key affected; more than one raises (the caller's transaction
        rolls back): the data map's primary_key is not unique and other people's rows would change."""
        count = result.rowcount or 0
        if count > 1:
            raise StoreError(
                f"{collection.address}: the row key ({', '.join(key)}) would {verb} {count} rows, not 1; "
                "nothing was changed. The data map's primary_key is not unique in the table: declare the "
                "table's primary key (manage.py load_datamap / test_store name it)")
        return count

    def mask(self, collection: CollectionSpec, plans: Iterable) -> int:
        table = self._table(collection)
        changed = 0
        try:
            with self.engine.begin() as conn:
                for plan in plans:
                    result = conn.execute(sa.update(table).where(self._where(table, plan.key)).values(**plan.values))
                    changed += self._one_row(collection, plan.key, result, "change")
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
                    deleted += self._one_row(collection, plan.key, result, "delete")
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
