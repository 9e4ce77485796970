"""A read logged outside any transaction (as in a real request: PostgreSQL sends its own BEGIN with
the head lock and COMMIT with the INSERT) is sealed as stored; a failed insert leaves nothing
half-done and the connection usable."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection

from audit.chain import chain_verify
from audit.models import AuditEntry
from audit.services import access_record
from governance.subjects.models import Workspace
from tests.accounts import OtpVerifiedClient
from tests.factories import make_profile


@pytest.mark.django_db(transaction=True)
def test_reads_logged_in_autocommit_mode(workspaces, role_users, settings):
    settings.MAMORU_TRUSTED_PROXIES = ["127.0.0.1"]  # the test client is the proxy here
    profile = make_profile(workspaces[0])
    assert connection.get_autocommit() and not connection.in_atomic_block
    first = access_record(actor=role_users["dpo"], obj=profile, fields=["email"], reason="r1")
    before = AuditEntry.objects.count()
    if connection.vendor == "postgresql":  # SQLite does not enforce the column's length
        with pytest.raises(DatabaseError):  # object_pk longer than its column: the INSERT fails
            access_record(actor=role_users["dpo"], obj=Workspace(pk="x" * 300), reason="too long")
        assert connection.connection.info.transaction_status == 0  # idle: rolled back
    assert AuditEntry.objects.count() == before
    second = access_record(actor=role_users["dpo"], obj=profile, fields=["email"], reason="r2")
    assert second.pseq == first.pseq + 1 or second.partition != first.partition
    # A real request behind a proxy: the address auditlog's context sets is sealed as stored.
    client = OtpVerifiedClient()
    client.force_login(role_users["dpo"])
    response = client.get(f"/api/v1/profiles/{profile.pk}/", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert response.status_code == 200
    stored = AuditEntry.objects.order_by("-seq").first()
    assert stored.remote_addr == "198.51.100.4"
    assert list(chain_verify()) == []
