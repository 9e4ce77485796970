"""A use case the database aborted to break a deadlock runs again (governance.locking), and
concurrent consent batches for the same people in opposite orders all land (bench/load.py's flood
saw PostgreSQL 'deadlock detected' as 500s)."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection, connections, transaction

from governance.locking import retry_on_deadlock, transaction_retryable
from governance.subjects.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)


def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row-lock deadlocks need concurrent writers (SQLite serialises them)")


def test_a_deadlocked_use_case_runs_again_and_both_writers_finish(workspaces):
    _postgres_only()
    first, second = (w.pk for w in workspaces[:2])
    both_locked_one = threading.Barrier(2, timeout=20)
    attempts: dict[str, int] = {"ab": 0, "ba": 0}
    errors: list[BaseException] = []

    def writer(name: str, order: tuple):
        def use_case():
            attempts[name] += 1
            with transaction.atomic():
                Workspace.objects.select_for_update().get(pk=order[0])
                if attempts[name] == 1:
                    both_locked_one.wait()  # each holds one row and asks for the other's
                Workspace.objects.select_for_update().get(pk=order[1])
                Workspace.objects.filter(pk=order[1]).update(name=f"written by {name}")

        try:
            retry_on_deadlock(use_case)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=("ab", (first, second))),
               threading.Thread(target=writer, args=("ba", (second, first)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # PostgreSQL aborted one; it ran again


def test_only_deadlocks_and_serialization_failures_are_retried():
    class Cause(Exception):
        def __init__(self, sqlstate):
            self.sqlstate = sqlstate

    def wrapped(sqlstate):
        exc = OperationalError("x")
        exc.__cause__ = Cause(sqlstate)
        return exc

    assert transaction_retryable(wrapped("40P01")) and transaction_retryable(wrapped("40001"))
    assert not transaction_retryable(wrapped("23505")) and not transaction_retryable(OperationalError("gone"))
    calls = []

    def fails():
        calls.append(1)
        raise wrapped("23505")

    with pytest.raises(OperationalError):
        retry_on_deadlock(fails)
    assert len(calls) == 1  # not retried
