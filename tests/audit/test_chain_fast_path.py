"""The read path's one-statement fast path (PostgreSQL): a connection that has just written an
entry seals the next one at the place it reserved, in one statement; if another writer moved
that partition's head meanwhile, nothing is written on the stale place and the entry is sealed
again under the head's lock. ``access_recording`` sends the entry while the block runs and
fails the read if the entry is not stored."""

from __future__ import annotations

import threading

import pytest
from django.db import DataError, connection, connections
from django.test.utils import CaptureQueriesContext

from audit.chain import chain_verify, reserved_place
from audit.models import AuditEntry
from audit.services import access_record, access_recording
from governance.subjects.models import Profile, Workspace
from tests.accounts import OtpVerifiedClient
from tests.factories import make_profile

pytestmark = [pytest.mark.django_db(transaction=True)]


def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path exists on PostgreSQL only (SQLite has one writer)")


def _write_from_another_connection(actor, obj) -> AuditEntry:
    """Another writer in this process: a thread has its own connection and the same preferred
    partition as this thread."""
    done: list[AuditEntry] = []

    def run():
        try:
            done.append(access_record(actor=actor, obj=obj, fields=["email"], via="other writer"))
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return done[0]


def test_next_read_is_one_statement_on_the_reserved_place(workspaces, role_users):
    _postgres_only()
    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    first = access_record(actor=dpo, obj=profile, fields=["email"])
    place = reserved_place(connection)
    assert place is not None and place.partition == first.partition and place.seq > first.seq
    with CaptureQueriesContext(connection) as queries:
        second = access_record(actor=dpo, obj=profile, fields=["email"])
    assert len(queries) == 1, [q["sql"][:80] for q in queries]
    assert (second.partition, second.pseq, second.seq) == (first.partition, first.pseq + 1, place.seq)
    assert second.prev_hash == first.entry_hash
    assert list(chain_verify()) == []


def test_a_moved_head_is_never_written_on_its_stale_place(workspaces, role_users):
    _postgres_only()
    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    first = access_record(actor=dpo, obj=profile, fields=["email"])
    stale = reserved_place(connection)
    other = _write_from_another_connection(dpo, profile)
    assert other.partition == first.partition and other.pseq == first.pseq + 1  # took our place
    third = access_record(actor=dpo, obj=profile, fields=["email"])
    assert third.pk is not None and AuditEntry.objects.filter(pk=third.pk).exists()
    assert third.seq != stale.seq or third.partition != stale.partition or third.pseq > other.pseq
    assert list(chain_verify()) == []
    # Every partition stays contiguous: no two entries share a place.
    places = list(AuditEntry.objects.values_list("partition", "pseq"))
    assert len(places) == len(set(places))


def test_a_reservation_drawn_long_ago_is_not_used(workspaces, role_users):
    _postgres_only()
    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    access_record(actor=dpo, obj=profile, fields=["email"])
    connection._mamoru_audit_place.drawn_at -= 5  # its global number would sort far in the past
    assert reserved_place(connection) is None
    with CaptureQueriesContext(connection) as queries:
        access_record(actor=dpo, obj=profile, fields=["email"])
    assert len(queries) == 2  # the locking path: lock + draw, then move + insert + commit
    assert list(chain_verify()) == []


def test_access_recording_stores_the_entry_before_the_block_ends(workspaces, role_users):
    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    access_record(actor=dpo, obj=profile, fields=["email"])  # reserves a place on PostgreSQL
    before = AuditEntry.objects.count()
    with access_recording(actor=dpo, obj=profile, fields=["email"], via="test") as entry:
        # A query on the same connection inside the block waits for the entry's answer first.
        assert Profile.objects.filter(pk=profile.pk).count() == 1
        assert AuditEntry.objects.count() == before + 1
    assert entry.pk is not None
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.entry_hash == entry.entry_hash and stored.additional_data == {"via": "test"}
    with access_recording(actor=dpo, obj=profile, fields=["email"]) as entry2:
        pass  # no query inside: the answer is read on leaving
    assert AuditEntry.objects.filter(pk=entry2.pk).exists()
    assert AuditEntry.objects.count() == before + 2
    assert list(chain_verify()) == []


def test_access_recording_on_a_moved_head_reseals_under_the_lock(workspaces, role_users):
    _postgres_only()
    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    first = access_record(actor=dpo, obj=profile, fields=["email"])
    other = _write_from_another_connection(dpo, profile)
    assert other.pseq == first.pseq + 1
    with access_recording(actor=dpo, obj=profile, fields=["email"]) as entry:
        pass
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.partition, stored.pseq) != (other.partition, other.pseq)
    assert list(chain_verify()) == []


def test_a_failed_entry_fails_the_read_and_leaves_the_connection_usable(workspaces, role_users):
    _postgres_only()
    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    access_record(actor=dpo, obj=profile, fields=["email"])
    before = AuditEntry.objects.count()
    with pytest.raises(DataError), access_recording(actor=dpo, obj=Workspace(pk="x" * 300), fields=["name"]):
        pass  # object_pk longer than its column: the entry is refused, so the read must fail
    assert connection.connection.info.transaction_status == 0
    assert AuditEntry.objects.count() == before
    access_record(actor=dpo, obj=profile, fields=["email"])
    assert list(chain_verify()) == []


def test_profile_retrieve_logs_its_read_through_the_fast_path(workspaces, role_users):
    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    client = OtpVerifiedClient()
    client.force_login(dpo)
    for _ in range(3):  # the first read reserves a place; the next ones use it
        assert client.get(f"/api/v1/profiles/{profile.pk}/").status_code == 200
    entries = AuditEntry.objects.filter(object_pk=str(profile.pk), additional_data__via="api:retrieve")
    assert entries.count() == 3
    assert list(chain_verify()) == []


def test_a_read_waits_for_its_own_head_when_every_head_is_held(workspaces, role_users, settings):
    """Every head held by other writers (more writers than partitions, as under load): the read's
    entry waits for its own head on the connection's own transaction. Before, the wait path created
    the heads through the ORM, which cannot open its atomic block inside the read path's BEGIN
    ("can't change 'autocommit' now"), and the read failed with a 500."""
    _postgres_only()
    settings.MAMORU_AUDIT_CHAIN_PARTITIONS = 1
    from django.db import transaction

    dpo, profile = role_users["dpo"], make_profile(workspaces[0])
    held, release = threading.Event(), threading.Event()

    def holder():
        try:
            with transaction.atomic():
                access_record(actor=dpo, obj=profile, fields=["email"], via="holder")
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(timeout=30)
    threading.Timer(0.5, release.set).start()
    entry = access_record(actor=dpo, obj=profile, fields=["email"], via="waiter")  # waits, then seals
    thread.join(timeout=30)
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    assert list(chain_verify()) == []
