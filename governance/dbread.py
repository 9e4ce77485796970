"""Hot read paths: no per-request connection ping, and on PostgreSQL one prepared statement run
straight through libpq.

With ``CONN_HEALTH_CHECKS`` (on for PostgreSQL and MariaDB, see settings) Django sends ``SELECT 1``
before the first query of every request, so a one-query endpoint pays two round trips. For
read-only, idempotent work on a hot path (the consent check), :func:`read_without_ping` skips that
ping and instead, when the persistent connection turns out to be dead, reconnects and runs the
work once more. A failure on a live connection (bad SQL, a timeout) is not retried.

:class:`PreparedRead` runs one read-only statement. On PostgreSQL, outside a transaction, it is
prepared once per connection and executed with libpq's ``PQexecPrepared`` (binary results, the GIL
released while it waits): about 150 µs of Python per call less than a Django cursor, because
psycopg's per-call query conversion, adaptation and prepared-statement bookkeeping are skipped.
Everywhere else (SQLite, MariaDB, inside ``atomic``, or while queries are being logged or wrapped,
as debug tools and ``assertNumQueries`` do) it uses an ordinary Django cursor, so what it returns
is the same apart from the type of each value, which the caller normalizes (see the column types).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

T = TypeVar("T")


def read_without_ping(work: Callable[[], T], *, using: str = DEFAULT_DB_ALIAS) -> T:
    """Run ``work`` (idempotent; may count a rate limit) without the health-check round trip."""
    connection = connections[using]
    if connection.in_atomic_block:
        return work()  # inside a transaction there is nothing to reconnect to
    connection.health_check_done = True
    try:
        return work()
    except (OperationalError, InterfaceError):
        if connection.connection is not None and connection.is_usable():
            raise
        connection.close()
        return work()


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=True)  # int2 / int4 / int8 alike


def _timestamptz(value: bytes) -> datetime:
    return _PG_EPOCH + timedelta(microseconds=int.from_bytes(value, "big", signed=True))


# Binary wire format decoders, by PostgreSQL type family.
DECODERS: dict[str, Callable[[bytes], object]] = {
    "int": _int,
    "text": bytes.decode,
    "bool": lambda value: value != b"\x00",
    "timestamptz": _timestamptz,
}

# SQLSTATE invalid_sql_statement_name: the connection lost the statement (DISCARD ALL, a pooler
# handing out another server connection); prepare it again.
_NOT_PREPARED = b"26000"


class PreparedRead:
    """One read-only statement, run as a prepared statement through libpq on PostgreSQL.

    ``sql`` uses ``%s`` placeholders like a Django cursor (or is a callable returning it, so table
    names can come from models after start-up). ``columns`` names the PostgreSQL type family of
    each result column (a key of :data:`DECODERS`).
    """

    def __init__(self, *, name: str, sql: str | Callable[[], str], columns: Sequence[str]):
        self.name = name.encode()
        self._sql = sql
        self._decoders = tuple(DECODERS[c] for c in columns)
        self._prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # psycopg conn -> True
        self._lock = threading.Lock()

    @property
    def sql(self) -> str:
        if callable(self._sql):
            self._sql = self._sql()
        return self._sql

    def _pg_sql(self) -> bytes:
        parts = self.sql.split("%s")
        if "%" in "".join(parts):
            raise ValueError("Only %s placeholders, no other % in a PreparedRead statement.")
        return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1)).encode()

    def fetchone(self, params: Sequence, *, using: str = DEFAULT_DB_ALIAS) -> tuple | None:
        """The first row (or ``None``): Python values on PostgreSQL, the driver's elsewhere."""
        connection = connections[using]
        if (connection.vendor != "postgresql" or connection.in_atomic_block or connection.queries_logged
                or connection.execute_wrappers):
            with connection.cursor() as cursor:
                cursor.execute(self.sql, params)
                return cursor.fetchone()
        connection.ensure_connection()
        with connection.wrap_database_errors:
            return self._pg_fetchone(connection.connection, params)

    def _pg_fetchone(self, raw, params: Sequence) -> tuple | None:
        import psycopg
        from psycopg import pq

        values = [None if p is None else str(p).encode() for p in params]
        with raw.lock:
            pgconn = raw.pgconn
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError("the connection is lost")
            for _attempt in (0, 1):
                if raw not in self._prepared:
                    result = pgconn.prepare(self.name, self._pg_sql())
                    if result.status != pq.ExecStatus.COMMAND_OK:
                        raise _error(pgconn, result)
                    with self._lock:
                        self._prepared[raw] = True
                result = pgconn.exec_prepared(self.name, values, result_format=1)
                if result.status == pq.ExecStatus.TUPLES_OK:
                    break
                if result.error_field(pq.DiagnosticField.SQLSTATE) != _NOT_PREPARED or _attempt:
                    raise _error(pgconn, result)
                with self._lock:
                    self._prepared.pop(raw, None)
        if not result.ntuples:
            return None
        return tuple(
            None if (value := result.get_value(0, i)) is None else decode(value)
            for i, decode in enumerate(self._decoders)
        )


def _error(pgconn, result) -> Exception:
    import psycopg
    from psycopg import pq

    message = (result.error_message or b"").decode(errors="replace").strip() or "statement failed"
    if pgconn.status != pq.ConnStatus.OK:
        return psycopg.OperationalError(message)
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    try:
        cls = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.DatabaseError
    except KeyError:
        cls = psycopg.DatabaseError
    return cls(message)
