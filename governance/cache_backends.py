"""Cache backends.

:class:`DatabaseCache` is Django's database cache with an atomic :meth:`~DatabaseCache.incr`:
Django's reads the value and writes it back, so two processes counting the same key at once lose
one count, and a rate limit counted there lets more through than it says (``governance.access
.throttling`` counts in this cache when no Redis is configured).
"""

from __future__ import annotations

import base64
import pickle

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, models, router, transaction
from django.utils.timezone import now as tz_now


class DatabaseCache(DjangoDatabaseCache):
    """The database cache (same table and format as Django's) with an atomic ``incr``."""

    def incr(self, key, delta=1, version=None):
        """Add ``delta`` under a row lock (``SELECT … FOR UPDATE``; SQLite: the write lock that
        ``BEGIN IMMEDIATE`` takes) and return the new value; ``ValueError`` when the key is missing
        or expired, as Django's caches do."""
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table = quote(self._table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        expression = models.Expression(output_field=models.DateTimeField())
        converters = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {quote('value')}, {quote('expires')} FROM {table} "  # noqa: S608 - quoted names
                f"WHERE {quote('cache_key')} = %s{lock}",
                [key],
            )
            row = cursor.fetchone()
            if row is not None:
                expires = row[1]
                for converter in converters:
                    expires = converter(expires, expression, connection)
                if expires < tz_now():
                    row = None
            if row is None:
                raise ValueError(f"Key '{key}' not found.")
            value = pickle.loads(base64.b64decode(connection.ops.process_clob(row[0]).encode()))  # noqa: S301 - our own rows
            value += delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {quote('value')} = %s WHERE {quote('cache_key')} = %s",  # noqa: S608
                [encoded, key],
            )
        return value
