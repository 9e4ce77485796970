"""Hot read paths without Django's per-request connection ping.

With ``CONN_HEALTH_CHECKS`` (on for PostgreSQL and MariaDB, see settings) Django sends ``SELECT 1``
before the first query of every request, so a one-query endpoint pays two round trips. For
read-only, idempotent work on a hot path (the consent check), :func:`read_without_ping` skips that
ping and instead, when the persistent connection turns out to be dead, reconnects and runs the
work once more. A failure on a live connection (bad SQL, a timeout) is not retried.
"""

from __future__ import annotations

from collections.abc import Callable
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
