"""Requests as team work (issue 15, item 2): assignee and "my queue", internal notes, messages to
the person in their language, the clock paused for "we need more information" where the law
allows it and resumed by the person's reply, deny and extend with a preview of the e-mail."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from tests.dsr.conftest import submit_verified

pytestmark = pytest.mark.django_db

EMAIL = "Hanako.Yamada+dsr@Example.jp"


def waiting_request(workspace, mailoutbox, *, jurisdiction: str | None = None, locale: str = "en"):
    """A verified request held for approval (the clock runs; nothing executes)."""
    from dsr.models import RequestStatus, WorkspaceDsrPolicy

    WorkspaceDsrPolicy.objects.get_or_create(workspace=workspace, request_type="", defaults={"requires_approval": True})
    request = submit_verified(workspace, mailoutbox, "access", email=EMAIL, jurisdiction=jurisdiction, locale=locale)
    assert request.status == RequestStatus.AWAITING_APPROVAL
    mailoutbox.clear()
    return request


def send(**kwargs):
    from dsr.services import dsr_message_send

    with TestCase.captureOnCommitCallbacks(execute=True):
        return dsr_message_send(**kwargs)


def audit_notes(request) -> list[str]:
    from audit.models import AuditEntry

    return list(AuditEntry.objects.filter(object_pk=str(request.pk)).order_by("seq").values_list("reason", flat=True))


def test_more_information_about_identity_pauses_the_gdpr_clock_and_the_reply_resumes_it(
        workspaces, role_users, mailoutbox, client):
    """GDPR Art. 12(6) / recital 64: asking to confirm identity stops the month; the answer restarts it."""
    from dsr.models import RequestMessage

    # given: an EU request due in about a month
    request = waiting_request(workspaces[1], mailoutbox)
    due_before = request.due_at

    # when: the DPO asks for more information to confirm the identity
    message = send(request=request, actor=role_users["dpo"], kind="more_information", info_reason="identity",
                   body="Please send the order number of your last purchase to hanako@example.jp's account.")

    # then: the clock is paused, the e-mail says so and links the portal to answer
    request.refresh_from_db()
    assert request.paused_at is not None and request.pause_reason == "identity" and message.paused_clock
    assert message.delivered is None or RequestMessage.objects.get(pk=message.pk).delivered
    mail = mailoutbox[-1]
    assert mail.to == ["Hanako.Yamada+dsr@Example.jp"]
    assert mail.subject == "We need more information for your privacy request"
    assert "is paused (GDPR Art. 12(6), recital 64)" in mail.body
    assert "hanako@example.jp's account" in mail.body  # the person reads the full text
    assert "/privacy/r/" in mail.body
    # stored masked, the full text sealed under the request's data key
    assert "hanako@example.jp" not in message.body and message.body_enc is not None

    # when: three days later the person answers on the portal
    paused_at = timezone.now() - dt.timedelta(days=3)
    type(request).objects.filter(pk=request.pk).update(paused_at=paused_at)
    link = mail.body.split("/privacy/r/")[1].split("/")[0]
    page = client.get(f"/privacy/r/{link}/")
    assert page.status_code == 200 and b"We are waiting for your answer" in page.content
    answer = client.post(f"/privacy/r/{link}/reply/", {"body": "Order 10023, placed in March."})

    # then: the clock runs again, the deadline moved by the three days it stood still
    assert answer.status_code == 302
    request.refresh_from_db()
    assert request.paused_at is None
    moved = request.due_at - due_before
    assert dt.timedelta(days=3) - dt.timedelta(seconds=5) <= moved <= dt.timedelta(days=3, seconds=5)
    reply = RequestMessage.objects.get(request=request, direction="inbound")
    assert reply.resumed_clock and reply.body == "Order 10023, placed in March."
    assert "reply from the requester (portal)" in audit_notes(request)


def test_ccpa_verification_time_counts_so_the_clock_never_pauses(workspaces, role_users, mailoutbox):
    """CCPA §7021(b): the 45 days begin on receipt regardless of the time needed to verify."""
    request = waiting_request(workspaces[1], mailoutbox, jurisdiction="US-CA")

    message = send(request=request, actor=role_users["dpo"], kind="more_information", info_reason="identity",
                   body="Please confirm the postal code on your account.")

    request.refresh_from_db()
    assert request.paused_at is None and not message.paused_clock
    assert "does not stop while we wait (CCPA §7021(b))" in mailoutbox[-1].body


@pytest.mark.parametrize(("jurisdiction", "reason", "pauses"), [
    ("EU", "scope", False),  # recital 63: the question is allowed, the month runs on
    ("JP", "scope", True),  # APPI 法32条・37条: 遅滞なく from a request the business can act on
    ("JP", "identity", True),
    ("US", "identity", True),  # our policy outside the three laws: identity only
])
def test_which_questions_pause_the_clock(workspaces, role_users, mailoutbox, jurisdiction, reason, pauses):
    request = waiting_request(workspaces[0], mailoutbox, jurisdiction=jurisdiction)

    send(request=request, actor=role_users["privacy_analyst"], kind="more_information", info_reason=reason,
         body="Which of our services does your request concern?")

    request.refresh_from_db()
    assert (request.paused_at is not None) is pauses


def test_messages_are_written_in_the_persons_language(workspaces, role_users, mailoutbox):
    request = waiting_request(workspaces[0], mailoutbox, jurisdiction="JP", locale="ja")

    send(request=request, actor=role_users["dpo"], kind="more_information", info_reason="identity",
         body="ご注文番号をお知らせください。")

    mail = mailoutbox[-1]
    assert mail.subject == "プライバシーに関するご請求について追加の情報が必要です"
    assert "ご注文番号をお知らせください。" in mail.body and "停止" in mail.body


def test_a_reply_without_a_question_or_after_closing_is_refused(workspaces, role_users, mailoutbox):
    from dsr.services import InvalidTransition, dsr_message_reply, dsr_request_deny

    request = waiting_request(workspaces[1], mailoutbox)
    with pytest.raises(InvalidTransition):
        dsr_message_reply(request=request, body="hello")
    send(request=request, actor=role_users["dpo"], body="We are looking into it.")
    with TestCase.captureOnCommitCallbacks(execute=True):
        dsr_request_deny(request=request, actor=role_users["dpo"], reason="Manifestly unfounded request.")
    with pytest.raises(InvalidTransition):
        dsr_message_reply(request=request, body="hello again")


def test_internal_notes_are_masked_for_roles_that_may_not_reveal(workspaces, role_users, mailoutbox, client):
    from audit.models import AuditEntry
    from dsr.services import dsr_note_add

    # given: a note quoting the person's phone number, on a request of the support agent's workspace
    request = waiting_request(workspaces[0], mailoutbox, jurisdiction="JP")
    note = dsr_note_add(request=request, actor=role_users["privacy_analyst"],
                        text="Called back on 090-1234-5678, she confirmed the order.")
    assert "090-1234-5678" not in note.text and note.text_enc
    url = reverse("admin:dsr_datasubjectrequest_change", args=[request.pk])

    # when / then: the support agent (no reveal permission) sees it masked, with no way to reveal
    client.force_login(role_users["support_agent"])
    page = client.get(url + "?reveal_text=1").content.decode()
    assert "she confirmed the order" in page and "090-1234-5678" not in page
    assert 'id="reveal-text"' not in page and 'id="note-form"' not in page  # view only: no writing

    # when / then: the DPO may read it in full, and that reading is in the audit chain
    client.force_login(role_users["dpo"])
    masked = client.get(url).content.decode()
    assert "090-1234-5678" not in masked and 'id="reveal-text"' in masked
    full = client.get(url + "?reveal_text=1").content.decode()
    assert "090-1234-5678" in full
    assert AuditEntry.objects.filter(object_pk=str(request.pk), action=AuditEntry.Action.ACCESS,
                                     actor=role_users["dpo"], fields=["notes", "messages"]).exists()


def test_deny_shows_exactly_the_email_that_is_then_sent_and_cancel_does_nothing(
        workspaces, role_users, mailoutbox, client):
    from dsr.models import RequestStatus

    request = waiting_request(workspaces[1], mailoutbox)
    client.force_login(role_users["dpo"])
    url = reverse("admin:dsr_datasubjectrequest_deny", args=[request.pk])
    reason = "We already answered the same request last week (Art. 12(5): 'manifestly excessive')."

    # when: the DPO writes a reason and asks for the preview
    page = client.post(url, {"reason": reason, "step": "preview"})

    # then: the preview is the e-mail; nothing is done yet; cancel leads back to the request
    html = page.content.decode()
    assert page.status_code == 200 and 'id="mail-preview"' in html
    assert "Your privacy request was not carried out" in html and "manifestly excessive" in html
    assert f'href="{reverse("admin:dsr_datasubjectrequest_change", args=[request.pk])}"' in html
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL and mailoutbox == []

    # when: confirmed
    with TestCase.captureOnCommitCallbacks(execute=True):
        done = client.post(url, {"reason": reason, "step": "confirm"})

    # then: back on the request, denied, and the person got the previewed text exactly
    assert done.status_code == 302 and done.url == reverse("admin:dsr_datasubjectrequest_change", args=[request.pk])
    request.refresh_from_db()
    assert request.status == RequestStatus.REJECTED
    from dsr.services import dsr_mail_preview

    mail = mailoutbox[-1]
    assert "'manifestly excessive'" in mail.body  # not HTML-escaped in a text e-mail
    assert mail.subject in html and mail.body.strip().splitlines()[0] in html
    assert dsr_mail_preview(request=request, action="deny", reason=reason)["body"] == mail.body


def test_extend_preview_names_the_new_deadline(workspaces, role_users, mailoutbox, client):
    request = waiting_request(workspaces[1], mailoutbox)
    client.force_login(role_users["dpo"])
    url = reverse("admin:dsr_datasubjectrequest_extend", args=[request.pk])
    reason = "Records in three archived systems must be restored first."

    page = client.post(url, {"reason": reason, "step": "preview"}).content.decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post(url, {"reason": reason, "step": "confirm"})

    request.refresh_from_db()
    assert request.extended_at is not None
    assert mailoutbox[-1].body.splitlines()[0] in page  # "... We will answer by <new date>."


def test_assign_my_queue_and_bulk_assign_are_audited(workspaces, role_users, mailoutbox, client):
    from dsr.models import DataSubjectRequest
    from dsr.services import DsrInvalid, dsr_request_assign

    first = waiting_request(workspaces[1], mailoutbox)
    second = submit_verified(workspaces[1], mailoutbox, "access", email="erika@example.de")
    analyst, dpo = role_users["privacy_analyst"], role_users["dpo"]

    # a role that may not work requests cannot be given one
    with pytest.raises(DsrInvalid):
        dsr_request_assign(request=first, actor=dpo, assignee=role_users["marketing"])

    # bulk assign from the list, then "my queue" lists them for the analyst only
    client.force_login(dpo)
    changelist = reverse("admin:dsr_datasubjectrequest_changelist")
    answer = client.post(changelist, {"action": "assign", "_selected_action": [first.pk, second.pk],
                                      "assignee": analyst.pk, "apply": "1"})
    assert answer.status_code == 302
    assert set(DataSubjectRequest.objects.filter(assignee=analyst).values_list("pk", flat=True)) == {first.pk,
                                                                                                   second.pk}
    assert "assigned to privacy_analyst" in audit_notes(first) and "assigned to privacy_analyst" in audit_notes(second)
    client.force_login(analyst)
    mine = client.get(changelist + "?queue=mine").content.decode()
    assert str(first.pk)[:8] in mine and str(second.pk)[:8] in mine
    client.force_login(dpo)
    assert str(first.pk)[:8] not in client.get(changelist + "?queue=mine").content.decode()

    # "Assign to me" on the request page, back on the request
    answer = client.post(reverse("admin:dsr_datasubjectrequest_assign", args=[first.pk]), {"assignee": dpo.pk})
    assert answer.url == reverse("admin:dsr_datasubjectrequest_change", args=[first.pk])
    first.refresh_from_db()
    assert first.assignee == dpo


def test_request_page_says_why_it_needs_attention_first_and_shows_the_requester_masked(
        workspaces, role_users, mailoutbox, client):
    request = waiting_request(workspaces[1], mailoutbox)
    type(request).objects.filter(pk=request.pk).update(status="needs_attention",
                                                       attention_reason="Store crm failed 5 times: timeout")
    client.force_login(role_users["dpo"])

    html = client.get(reverse("admin:dsr_datasubjectrequest_change", args=[request.pk])).content.decode()

    banner = html.index('id="request-attention"')
    assert banner < html.index('id="request-panel"') and "Store crm failed 5 times" in html[banner:banner + 400]
    assert "H•••@E•••" in html and "Hanako.Yamada" not in html
    assert "UTC" in html  # times carry their zone


def test_only_staff_who_may_change_requests_can_act(workspaces, role_users, mailoutbox, client):
    request = waiting_request(workspaces[0], mailoutbox, jurisdiction="JP")
    client.force_login(role_users["support_agent"])  # may view the request, not act on it
    for name in ("deny", "extend", "message", "note", "assign"):
        url = reverse(f"admin:dsr_datasubjectrequest_{name}", args=[request.pk])
        assert client.post(url, {"reason": "x" * 20, "step": "confirm", "text": "n", "body": "b"}).status_code == 403
    request.refresh_from_db()
    assert request.status == "awaiting_approval" and not request.notes.exists()
