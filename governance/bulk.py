"""Bulk writes of model instances on PostgreSQL without Django's per-value preparation.

``bulk_create`` prepares every value of every row through its field (``pre_save``,
``get_db_prep_save``) and, on PostgreSQL, sends each column as an array that psycopg builds in
Python. For the consent batch path (500 events and up to 500 states per request) that was about
half of the request's CPU. Here rows are read straight from the instances' attributes:

* :func:`rows_insert` streams them with ``COPY … FROM STDIN`` (psycopg formats rows in C);
* :func:`rows_upsert` pipelines one prepared ``INSERT … ON CONFLICT … DO UPDATE … RETURNING``
  per row in a single round trip.

Only plain models qualify: no field may compute its value on save (``auto_now``, custom
``pre_save``), and JSON fields are wrapped for psycopg here. Anything else, and every database
other than PostgreSQL, goes through ``bulk_create``, so callers need not care. Both run inside the
caller's transaction and mark the instances as saved, as ``bulk_create`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, models
from django.db.models.fields import Field

# pre_save implementations that return the attribute as it is (the date and time fields' only
# differ for auto_now / auto_now_add, which are checked separately).
_PLAIN_PRE_SAVE = {Field.pre_save, models.DateField.pre_save, models.DateTimeField.pre_save,
                   models.TimeField.pre_save}


def _plain(model: type[models.Model]) -> bool:
    return all(
        type(f).pre_save in _PLAIN_PRE_SAVE and not getattr(f, "auto_now", False)
        and not getattr(f, "auto_now_add", False)
        for f in model._meta.concrete_fields
    )


def _fast_path(model: type[models.Model], using: str) -> bool:
    return connections[using].vendor == "postgresql" and _plain(model)


def _row_getter(fields: Sequence[Field]):
    from psycopg.types.json import Jsonb

    attnames = [f.attname for f in fields]
    json_at = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]

    def row(obj) -> list:
        values = [getattr(obj, name) for name in attnames]
        for i in json_at:
            values[i] = None if values[i] is None else Jsonb(values[i])
        return values

    return row


def _mark_saved(objs: Sequence[models.Model], using: str) -> None:
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using


def rows_insert(model: type[models.Model], objs: Sequence[models.Model], *, using: str = "default") -> None:
    """Insert new instances (primary keys already set, e.g. UUIDs) in one COPY."""
    if not objs:
        return
    if not _fast_path(model, using):
        model._default_manager.using(using).bulk_create(objs, batch_size=500)
        return
    connection = connections[using]
    fields = model._meta.concrete_fields
    qn = connection.ops.quote_name
    sql = f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
    row = _row_getter(fields)
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row(row(obj))
    _mark_saved(objs, using)


def rows_upsert(
    model: type[models.Model], objs: Sequence[models.Model], *, unique_fields: Sequence[str],
    update_fields: Sequence[str], using: str = "default",
) -> None:
    """Insert or update by ``unique_fields`` (auto primary key); sets each instance's pk."""
    if not objs:
        return
    if not _fast_path(model, using):
        model._default_manager.using(using).bulk_create(
            objs, batch_size=500, update_conflicts=True, unique_fields=unique_fields, update_fields=update_fields,
        )
        return
    connection = connections[using]
    meta = model._meta
    qn = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if f is not meta.pk]
    column = {f.name: f.column for f in meta.concrete_fields}
    row = _row_getter(fields)
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({', '.join(qn(column[n]) for n in unique_fields)}) DO UPDATE SET "
        + ", ".join(f"{qn(column[n])} = EXCLUDED.{qn(column[n])}" for n in update_fields)
        + f" RETURNING {qn(meta.pk.column)}"
    )
    # One statement text for every batch size (parsed once), rows pipelined in one round trip.
    with connection.cursor() as cursor:
        raw = cursor.cursor
        raw.executemany(sql, [row(obj) for obj in objs], returning=True)
        for obj in objs:
            obj.pk = raw.fetchone()[0]
            raw.nextset()
    _mark_saved(objs, using)
