"""Row locks that take only the rows they name.

``select_for_update()`` on a query that joins (``select_related`` or a filter across a relation)
locks the joined rows too, in whatever order the plan visits them — two code paths that lock the
same parent and child rows in different orders then deadlock under load. Lock only the model's own
rows, in primary-key order.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import QuerySet


def lock_rows(queryset: QuerySet, *, skip_locked: bool = False) -> QuerySet:
    features = connections[queryset.db].features
    kwargs: dict = {}
    if features.has_select_for_update_of:
        kwargs["of"] = ("self",)
    if skip_locked and features.has_select_for_update_skip_locked:
        kwargs["skip_locked"] = True
    return queryset.select_for_update(**kwargs).order_by("pk")
