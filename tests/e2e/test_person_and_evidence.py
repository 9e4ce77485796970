"""Browser tests (issue 15, items 1 and 3): a DPO finds a person by e-mail from the admin header and
opens their page (axe-core: no serious or critical violation); a DPO acknowledges an anomaly alert
with a note after looking at the entries that raised it. Screenshots of the final states are kept
in test-artifacts/."""

from __future__ import annotations

import pytest

from tests.e2e.axe import assert_accessible
from tests.e2e.test_admin_dsr_approve import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_find_a_person_by_email_and_open_their_page(page, live_server, workspaces, role_users, screenshot):
    from audit.models import AuditEntry
    from audit.services import access_record
    from tests.factories import make_profile

    # given: a person in the DPO's workspaces, someone's earlier read of them
    person = make_profile(workspaces[0], locale="ja_JP", seed=11, email="Sakura.Tanaka@Example.JP")
    access_record(actor=role_users["support_agent"], obj=person, fields=["full_name"], via="admin")
    login(page, live_server, role_users["dpo"])

    # when: the DPO types the address as the customer wrote it into the header search
    page.fill("#mamoru-header-q", "sakura.tanaka@example.jp")
    page.press("#mamoru-header-q", "Enter")

    # then: straight to the person page, every section there, data masked
    page.wait_for_selector(".person-page")
    assert page.url.endswith(f"/admin/subjects/profile/{person.pk}/person/")
    for section in ("profile", "identities", "requests", "access_log"):
        assert page.locator(f"#person-{section}").is_visible(), section
    text = page.inner_text(".person-page")
    assert "sakura.tanaka" not in text.lower() and "s•••@e•••" in text
    assert "support_agent@staff.example" in text  # who read them before
    views = AuditEntry.objects.filter(object_pk=str(person.pk), additional_data__via="admin:person")
    assert views.count() == 1
    assert_accessible(page, "person page")
    screenshot(page, "person-page")


def test_acknowledge_an_anomaly_with_a_note(page, live_server, workspaces, role_users, screenshot):
    from audit.models import Outcome
    from audit.models_exports import AnomalyAlert, AnomalyKind, AnomalyRule
    from audit.services import access_record
    from oversight.anomalies import anomalies_evaluate, anomaly_rules_ensure_defaults
    from tests.factories import make_profile

    # given: an alert for repeated denied attempts (the default rules: a transactional test
    # starts with empty tables)
    anomaly_rules_ensure_defaults()
    AnomalyRule.objects.exclude(kind=AnomalyKind.DENIED_ATTEMPTS).update(enabled=False)
    AnomalyRule.objects.filter(kind=AnomalyKind.DENIED_ATTEMPTS).update(threshold=1)
    other = make_profile(workspaces[1], seed=12)
    raised = [access_record(actor=role_users["support_agent"], obj=other, outcome=Outcome.DENIED)
              for _ in range(2)]
    [alert] = anomalies_evaluate(notify=False)
    login(page, live_server, role_users["dpo"])

    # when: the DPO opens the alert, looks at the entries that raised it, then acknowledges
    page.goto(f"{live_server.url}/admin/audit/anomalyalert/{alert.pk}/change/")
    page.click("a.alert-entries")
    page.wait_for_selector("#result_list")
    shown = {int(t) for t in page.locator("#result_list th.field-seq a").all_inner_texts()}
    assert shown == {e.seq for e in raised}
    page.go_back()
    page.click("#alert-acknowledge")
    page.wait_for_selector("#ack-form")
    page.click("#ack-form input[type=submit]")  # without a note: the browser refuses to send it
    assert page.eval_on_selector("#id_note", "e => e.validity.valueMissing")
    page.fill("#id_note", "   x")  # and the server refuses a note that says nothing
    page.click("#ack-form input[type=submit]")
    page.wait_for_selector(".errornote")
    assert AnomalyAlert.objects.get().acknowledged_at is None
    page.fill("#id_note", "Agent opened the wrong workspace; retrained")
    page.click("#ack-form input[type=submit]")
    page.wait_for_selector(".messagelist .success")

    # then
    alert.refresh_from_db()
    assert alert.acknowledged_by == role_users["dpo"]
    assert alert.acknowledge_note == "Agent opened the wrong workspace; retrained"
    screenshot(page, "alert-acknowledged")
