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


# PostgreSQL's deadlock_detected and serialization_failure; MariaDB's lock-wait deadlock (1213).
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def transaction_retryable(exc: BaseException) -> bool:
    """True when the database aborted the transaction only to break a lock cycle (deadlock) or a
    serialization conflict: running the whole use case again is correct and will likely succeed."""
    cause = getattr(exc, "__cause__", None) or exc
    sqlstate = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    args = getattr(cause, "args", ())
    return bool(args) and args[0] == 1213


def retry_on_deadlock(fn, *, attempts: int = 3, using: str = "default"):
    """Run ``fn()`` (one use case with its own ``transaction.atomic``); run it again, after a short
    random pause, when the database aborted it to break a deadlock. Outside a transaction only:
    inside a caller's transaction the abort belongs to the caller."""
    import random
    import time

    from django.db import OperationalError

    connection = connections[using]
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except OperationalError as exc:
            if connection.in_atomic_block or attempt == attempts or not transaction_retryable(exc):
                raise
            time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311 - jitter, not security
    raise AssertionError("unreachable")
