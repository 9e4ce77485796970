"""Browser tests (issue 15, items 2 and 4): a DPO assigns a request, adds a note and asks the person
for more information, and sees the clock paused; a deny with the e-mail's preview (cancel, then
confirm); the dashboard's working lists and charts. axe-core finds no serious or critical
violation on the request page, the confirmation page and the dashboard. Screenshots of the final
states go to test-artifacts/."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.dsr.test_teamwork import waiting_request
from tests.e2e.axe import assert_accessible
from tests.e2e.test_admin_dsr_approve import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dpo_assigns_notes_and_asks_for_more_information_and_the_clock_pauses(
        page, live_server, workspaces, role_users, mailoutbox, screenshot):
    from dsr.models import DataSubjectRequest

    # given: an EU request waiting for approval, and the DPO on its page
    request = waiting_request(workspaces[1], mailoutbox)
    dpo = role_users["dpo"]
    login(page, live_server, dpo)
    change_url = f"{live_server.url}/admin/dsr/datasubjectrequest/{request.pk}/change/"
    page.goto(change_url)
    assert_accessible(page, "request page")

    # when: they take it, note why, and ask the person to confirm who they are
    with page.expect_navigation():
        page.click("#assign-me")
    assert dpo.username in page.inner_text("#request-assignee")
    page.fill("#id_text", "Order history does not match the e-mail domain; asking for the order number.")
    with page.expect_navigation():
        page.click("#note-add")
    assert "asking for the order number" in page.inner_text("#request-notes")
    with page.expect_navigation():
        page.click("#ask-more-information")
    assert page.is_checked("input[name=kind][value=more_information]")
    assert_accessible(page, "message page")
    page.select_option("#id_info_reason", "identity")
    page.fill("#id_body", "Please send us the number of your last order so that we can confirm it is you.")
    with page.expect_navigation():
        page.click("#confirm-preview")
    preview = page.inner_text("#preview-body")
    assert "number of your last order" in preview and "is paused (GDPR Art. 12(6), recital 64)" in preview
    with page.expect_navigation():
        page.click("#confirm-send")

    # then: back on the request, the clock shows paused and the person got exactly the preview
    assert page.url.startswith(change_url)
    assert page.inner_text("#request-sla") == "Clock paused"
    assert "waiting for the person's answer" in page.inner_text("#clock-paused")
    assert "paused the clock" in page.inner_text("#request-messages")
    assert mailoutbox[-1].body.strip() == preview.strip()
    stored = DataSubjectRequest.objects.get(pk=request.pk)
    assert stored.paused_at is not None and stored.assignee == dpo and stored.notes.count() == 1
    assert_accessible(page, "request page, clock paused")
    screenshot(page, "clock-paused")


def test_deny_with_preview_then_cancel_then_confirm(page, live_server, workspaces, role_users, mailoutbox,
                                                    screenshot):
    from dsr.models import DataSubjectRequest, RequestStatus

    request = waiting_request(workspaces[1], mailoutbox)
    login(page, live_server, role_users["dpo"])
    change_url = f"{live_server.url}/admin/dsr/datasubjectrequest/{request.pk}/change/"
    reason = "The same request was answered in full on 3 March; this one repeats it (Art. 12(5))."

    def to_preview() -> str:
        page.goto(change_url)
        with page.expect_navigation():
            page.click("#request-action-deny")
        page.fill("#id_reason", reason)
        with page.expect_navigation():
            page.click("#confirm-preview")
        return page.inner_text("#preview-body")

    # when: the DPO previews the refusal, then cancels
    preview = to_preview()
    assert "Your privacy request was not carried out" in page.inner_text("#preview-subject")
    assert reason in preview and "right to lodge a complaint" in preview
    assert_accessible(page, "deny preview")
    screenshot(page, "deny-preview")
    with page.expect_navigation():
        page.click("#confirm-cancel")

    # then: back on the request, nothing done, nothing sent
    assert page.url.startswith(change_url)
    assert DataSubjectRequest.objects.get(pk=request.pk).status == RequestStatus.AWAITING_APPROVAL
    assert mailoutbox == []

    # when: previewed again and confirmed
    preview = to_preview()
    with page.expect_navigation():
        page.click("#confirm-send")

    # then: back on the request, denied; the e-mail is the preview
    assert page.url.startswith(change_url)
    assert page.get_attribute("#request-status", "data-status") == "rejected"
    assert mailoutbox[-1].body.strip() == preview.strip()
    screenshot(page, "denied")


def test_dashboard_working_lists_and_readable_charts(page, live_server, workspaces, role_users, screenshot):
    from django.utils import timezone

    from consent.demo import purposes_seed
    from consent.selectors import catalogue
    from consent.services import consent_record_for_profile
    from dsr.demo import demo_requests_seed
    from governance.pii.models import ScanFinding
    from tests.factories import make_profile

    # given: the demo's requests, consent decisions and PII findings over the month
    demo_requests_seed()
    catalogue.invalidate()
    purposes_seed()
    catalogue.invalidate()
    profile = make_profile(workspaces[0])
    for code in ("marketing_email", "analytics"):
        consent_record_for_profile(profile=profile, purpose_code=code, state="given", method="form")
    now = timezone.now()
    ScanFinding.objects.bulk_create([
        ScanFinding(created_at=now - dt.timedelta(days=d), channel="ingest", source="crm", entity_type=kind,
                    field_path="notes", score=0.9, recognizer="demo", start=0, end=5)
        for d in range(0, 30, 2) for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "JP_MY_NUMBER")])

    # when: the DPO opens the admin home on a laptop-sized window
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, role_users["dpo"])

    # then: the working lists are there with their SLA colours
    for key in ("mine", "overdue", "week", "attention"):
        assert page.is_visible(f"#work-{key}")
    assert page.locator("#work-overdue .sla-badge.sla-overdue").count() >= 2
    assert page.locator("#work-week .sla-badge.sla-soon").count() >= 1
    # charts: x labels drawn at a readable size and never overlapping
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll('.chart svg')).map(svg =>
        Array.from(svg.querySelectorAll('.axis.x text')).map(t => t.getBoundingClientRect())
            .filter(r => r.width > 0).map(r => ({x: r.left, r: r.right, y: r.top, b: r.bottom, h: r.height})))""")
    assert len(boxes) == 2  # consent and PII
    for labels in boxes:
        assert len(labels) >= 5
        assert min(b["h"] for b in labels) >= 10  # px: readable
        ordered = sorted(labels, key=lambda b: b["x"])
        for left, right in zip(ordered, ordered[1:], strict=False):
            assert left["r"] <= right["x"], (left, right)
    assert_accessible(page, "dashboard")
    screenshot(page, "dashboard")
