"""``audit_tamper()``: lift the database's append-only guard on audit entries for a test that plays
an attacker with direct database access (who could drop the trigger too); restored on exit."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

_migration = importlib.import_module("audit.migrations.0006_chain_v2_partitions_append_only")


@contextmanager
def audit_tamper(using: str = "default") -> Iterator[None]:
    connection = connections[using]
    with connection.cursor() as cursor:
        for sql in _migration.DROP_SQL.get(connection.vendor, []):
            cursor.execute(sql)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for sql in _migration.TRIGGER_SQL.get(connection.vendor, []):
                cursor.execute(sql)


_consent_migration = importlib.import_module("consent.migrations.0007_events_append_only")


@contextmanager
def consent_tamper(using: str = "default") -> Iterator[None]:
    """The same for consent events and amendments (consent's append-only triggers)."""
    from django.apps import apps

    connection = connections[using]
    with connection.cursor() as cursor:
        for sql in _consent_migration.DROP_SQL.get(connection.vendor, []):
            cursor.execute(sql)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for sql in _consent_migration.trigger_sql(connection.vendor, _consent_migration._columns(apps)):
                cursor.execute(sql)
