"""Evidence you can read (issue 15, item 3): the audit entry list and page, filters, masked
reasons with an audited reveal, and anomaly alerts linked to the entries that raised them."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEntry, Outcome
from audit.models_exports import AnomalyAlert, AnomalyKind, AnomalyRule
from audit.services import access_record
from oversight.anomalies import anomalies_evaluate
from tests.factories import make_profile

pytestmark = pytest.mark.django_db
LIST = "/admin/audit/auditentry/"


def _seqs(page: str) -> set[int]:
    return {int(n) for n in re.findall(r'<th class="field-seq"><a href="[^"]+">(\d+)</a>', page)}


def test_list_shows_who_what_fields_outcome_reason_and_via(client, workspaces, role_users):
    profile = make_profile(workspaces[0], seed=1)
    access_record(actor=role_users["support_agent"], obj=profile, fields=["full_name"],
                  reason="ticket 77: caller hanako@example.jp", via="admin:reveal")
    access_record(actor=role_users["support_agent"], obj=profile, outcome=Outcome.DENIED, via="api")
    client.force_login(role_users["auditor"])
    page = client.get(LIST).content.decode()
    assert "support_agent@staff.example" in page and "Access" in page
    assert "name" in page and "Denied" in page and "Admin reveal" in page
    assert "hanako@example.jp" not in page and "&lt;EMAIL_ADDRESS&gt;" in page  # masked reason
    assert 'id="audit-reveal-reasons"' not in page  # the auditor may not reveal
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", page) and "Times shown in" in page


def test_dpo_reveals_reasons_and_the_reveal_is_recorded(client, workspaces, role_users):
    profile = make_profile(workspaces[0], seed=2)
    entry = access_record(actor=role_users["support_agent"], obj=profile, fields=["address"],
                          reason="ticket 78: caller hanako@example.jp", via="admin:reveal")
    client.force_login(role_users["dpo"])
    page = client.get(LIST).content.decode()
    assert 'id="audit-reveal-reasons"' in page and "hanako@example.jp" not in page
    revealed = client.get(LIST + "?reveal_reasons=1").content.decode()
    assert "hanako@example.jp" in revealed
    reads = AuditEntry.objects.filter(content_type__model="auditentry", object_pk=str(entry.pk),
                                      actor=role_users["dpo"], fields=["reason"])
    assert reads.count() == 1
    detail = client.get(f"{LIST}{entry.pk}/change/?reveal_reasons=1").content.decode()
    assert "hanako@example.jp" in detail and "ticket 78" in detail


def test_filters_by_person_actor_outcome_action(client, workspaces, role_users):
    mine, other = make_profile(workspaces[0], seed=3), make_profile(workspaces[0], seed=4)
    a = access_record(actor=role_users["support_agent"], obj=mine, fields=["full_name"], via="api")
    b = access_record(actor=role_users["privacy_analyst"], obj=mine, outcome=Outcome.DENIED, via="api")
    c = access_record(actor=role_users["support_agent"], obj=other, fields=["full_name"], via="api")
    client.force_login(role_users["dpo"])
    by_person = _seqs(client.get(f"{LIST}?person={mine.pk}").content.decode())
    assert {a.seq, b.seq} <= by_person and c.seq not in by_person
    denied = _seqs(client.get(f"{LIST}?person={mine.pk}&outcome__exact=denied").content.decode())
    assert denied == {b.seq}
    agent = role_users["support_agent"].pk
    by_actor = _seqs(client.get(f"{LIST}?actor__id__exact={agent}&action__exact=3").content.decode())
    assert {a.seq, c.seq} <= by_actor and b.seq not in by_actor
    by_via = _seqs(client.get(f"{LIST}?via=api").content.decode())
    assert {a.seq, b.seq, c.seq} <= by_via


def test_roles_without_audit_permission_are_refused(client, role_users):
    for role in ("support_agent", "marketing", "privacy_analyst"):
        client.force_login(role_users[role])
        assert client.get(LIST).status_code == 403, role


def test_alert_links_to_the_entries_that_raised_it(client, workspaces, role_users):
    AnomalyRule.objects.exclude(kind=AnomalyKind.DENIED_ATTEMPTS).update(enabled=False)
    AnomalyRule.objects.filter(kind=AnomalyKind.DENIED_ATTEMPTS).update(threshold=1)
    profile = make_profile(workspaces[1], seed=5)
    access_record(actor=role_users["support_agent"], obj=profile, fields=["full_name"])  # not counted
    raised = [access_record(actor=role_users["support_agent"], obj=profile, outcome=Outcome.DENIED)
              for _ in range(2)]
    access_record(actor=role_users["privacy_analyst"], obj=profile, outcome=Outcome.DENIED)  # someone else
    [alert] = anomalies_evaluate(notify=False)
    client.force_login(role_users["dpo"])
    page = client.get(f"/admin/audit/anomalyalert/{alert.pk}/change/").content.decode()
    link = re.search(r'<a class="alert-entries" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert _seqs(client.get(link).content.decode()) == {e.seq for e in raised}
    # acknowledging needs a note
    ack = f"/admin/audit/anomalyalert/{alert.pk}/acknowledge/"
    assert 'id="ack-form"' in client.get(ack).content.decode()
    client.post(ack, {"confirm": "yes", "note": ""})
    assert AnomalyAlert.objects.get().acknowledged_at is None
    response = client.post(ack, {"confirm": "yes", "note": "agent trained on the right workspace"})
    assert response.status_code == 302
    assert AnomalyAlert.objects.get().acknowledge_note == "agent trained on the right workspace"
