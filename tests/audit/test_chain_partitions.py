"""Partitioned audit chain (PostgreSQL): a writer never waits for another writer's partition, and
every partition chain plus the global order still verifies."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from audit.chain import chain_heads, chain_partitions, chain_verify
from audit.models import AuditEntry
from audit.services import access_record
from tests.factories import make_profile


@pytest.mark.django_db(transaction=True)
def test_writer_takes_a_free_partition_while_another_is_held(workspaces, role_users):
    if connection.vendor != "postgresql" or chain_partitions(connection) < 2:
        pytest.skip("partitions are a PostgreSQL feature")
    profile = make_profile(workspaces[0])
    dpo = role_users["dpo"]
    access_record(actor=dpo, obj=profile, reason="first")
    before = AuditEntry.objects.count()
    held, release, done = threading.Event(), threading.Event(), threading.Event()
    slow: list[AuditEntry] = []

    def slow_writer():
        try:
            with transaction.atomic():
                slow.append(access_record(actor=dpo, obj=profile, reason="slow"))
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert held.wait(timeout=30)
    # The slow writer holds its partition head until it commits; this write must not wait for it.
    fast = []
    for n in range(3):
        fast.append(access_record(actor=dpo, obj=profile, reason=f"fast {n}"))
    assert not done.is_set()
    release.set()
    thread.join(timeout=30)
    assert {e.partition for e in fast}.isdisjoint({slow[0].partition})
    # Global order: the slow entry drew its number first and committed last, and still sorts first.
    assert all(slow[0].seq < e.seq for e in fast)
    assert list(chain_verify()) == []
    assert len([h for h in chain_heads() if h.position]) >= 2
    assert AuditEntry.objects.count() == before + 4


@pytest.mark.django_db
def test_partition_chains_are_contiguous(workspaces, role_users):
    profile = make_profile(workspaces[0])
    for n in range(4):
        access_record(actor=role_users["dpo"], obj=profile, reason=f"read {n}")
    rows = list(AuditEntry.objects.order_by("partition", "pseq").values_list("partition", "pseq", "seq"))
    by_partition: dict[int, list[tuple[int, int]]] = {}
    for part, pseq, seq in rows:
        by_partition.setdefault(part, []).append((pseq, seq))
    for chain in by_partition.values():
        assert [p for p, _ in chain] == list(range(1, len(chain) + 1))
        assert [s for _, s in chain] == sorted(s for _, s in chain)
    assert list(chain_verify()) == []
