"""Request workflow: verification, approval, denial, extension, deadlines, rights via consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from dsr import deadlines
from dsr.execution import inline_mode, run_inline
from dsr.models import DataSubjectRequest, RequestStatus, WorkspaceDsrPolicy
from dsr.services import (
    DsrInvalid,
    InvalidTransition,
    VerificationFailed,
    dsr_request_approve,
    dsr_request_deny,
    dsr_request_extend,
    dsr_request_submit,
    dsr_request_verify,
)
from tests.dsr.conftest import code_from, load_map, submit_verified

pytestmark = pytest.mark.django_db


def submit(workspace, **kwargs) -> DataSubjectRequest:
    kwargs.setdefault("request_type", "access")
    kwargs.setdefault("email", "someone@example.com")
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        return dsr_request_submit(workspace=workspace, **kwargs)


def test_submit_is_the_same_for_known_and_unknown_addresses(workspaces, mailoutbox):
    """No enumeration: a known and an unknown address get the same status and the same mail."""
    from tests.factories import make_profile

    make_profile(workspaces[1], email="known@example.com")
    known = submit(workspaces[1], email="known@example.com")
    unknown = submit(workspaces[1], email="unknown@example.com")
    assert known.status == unknown.status == RequestStatus.PENDING_VERIFICATION
    assert len(mailoutbox) == 2
    assert mailoutbox[0].subject == mailoutbox[1].subject
    assert mailoutbox[0].to == ["known@example.com"]
    assert known.acknowledged_at is not None  # CCPA §7021 acknowledgement goes with the code


def test_code_is_stored_hashed_and_attempts_are_limited(workspaces, mailoutbox, settings):
    settings.MAMORU_DSR_CODE_MAX_ATTEMPTS = 3
    request = submit(workspaces[1])
    code = code_from(mailoutbox)
    request.refresh_from_db()
    assert code not in request.code_hash and len(request.code_hash) == 64
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (2, 1, 0):
        with pytest.raises(VerificationFailed) as info:
            dsr_request_verify(request=request, code=wrong)
        assert info.value.extra["attempts_left"] == left
    with pytest.raises(VerificationFailed) as info:
        dsr_request_verify(request=request, code=code)
    assert info.value.code == "too_many_attempts"


def test_expired_code_fails(workspaces, mailoutbox):
    request = submit(workspaces[1])
    DataSubjectRequest.objects.filter(pk=request.pk).update(code_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(VerificationFailed):
        dsr_request_verify(request=request, code=code_from(mailoutbox))


def test_verified_request_waits_for_approval_when_the_workspace_requires_it(workspaces, mailoutbox, role_users):
    WorkspaceDsrPolicy.objects.create(workspace=workspaces[1], request_type="erasure", requires_approval=True)
    request = submit_verified(workspaces[1], mailoutbox, "erasure", email="someone@example.com")
    assert request.status == RequestStatus.AWAITING_APPROVAL
    with inline_mode():
        request = dsr_request_approve(request=request, actor=role_users["dpo"])
    assert request.status == RequestStatus.RUNNING and request.approved_by == role_users["dpo"]
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED
    kinds = list(request.events.values_list("kind", flat=True))
    assert kinds[:5] == ["received", "code_sent", "verified", "awaiting_approval", "approved"]


def test_deny_needs_reasons_and_tells_of_the_right_to_complain(workspaces, mailoutbox, role_users):
    """GDPR Art. 12(4): a refusal gives reasons and the right to complain."""
    request = submit(workspaces[1], locale="ja")
    with pytest.raises(DsrInvalid):
        dsr_request_deny(request=request, actor=role_users["dpo"], reason="no")
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_deny(request=request, actor=role_users["dpo"], reason="本人確認ができませんでした。")
    assert request.status == RequestStatus.REJECTED and request.keep_until > timezone.now() + timedelta(days=700)
    body = mailoutbox[-1].body
    assert "本人確認ができませんでした。" in body
    assert "苦情" in body  # Japanese mail for a Japanese-speaking subject
    with pytest.raises(InvalidTransition):
        dsr_request_deny(request=request, actor=role_users["dpo"], reason="a second time, please")


def test_extension_once_with_reasons(workspaces, mailoutbox, role_users):
    """GDPR Art. 12(3): +2 months, once, told with reasons before the first month ends."""
    request = submit(workspaces[1])
    due = request.due_at
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_extend(request=request, actor=role_users["dpo"], reason="Many systems to search.")
    assert request.due_at.month == (due.month + 1) % 12 + 1 or request.due_at > due + timedelta(days=58)
    assert "Many systems to search." in mailoutbox[-1].body
    with pytest.raises(InvalidTransition) as info:
        dsr_request_extend(request=request, actor=role_users["dpo"], reason="Once more, for luck.")
    assert info.value.code == "already_extended"


def test_deadlines_by_jurisdiction(settings):
    received = datetime(2026, 1, 30, 9, 0, tzinfo=UTC)  # a Friday
    assert deadlines.due_at(jurisdiction="EU", received_at=received) == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert deadlines.due_at(jurisdiction="US-CA", received_at=received) == received + timedelta(days=45)
    assert deadlines.acknowledge_due_at(jurisdiction="US-CA", received_at=received) == received + timedelta(days=14)
    assert deadlines.extended_due_at(jurisdiction="US-CA", due=received) == received + timedelta(days=45)
    settings.MAMORU_DSR_APPI_TARGET_DAYS = 7
    assert deadlines.due_at(jurisdiction="JP", received_at=received) == received + timedelta(days=7)
    assert deadlines.acknowledge_due_at(jurisdiction="EU", received_at=received) is None


@pytest.mark.parametrize("kwargs,code", [
    ({"request_type": "forget_me"}, "unknown_request_type"),
    ({"email": "not-an-email"}, None),
    ({"jurisdiction": "MARS"}, "unknown_jurisdiction"),
    ({"request_type": "rectification", "details": {}}, "rectification_changes_required"),
    ({"details": {"purposes": "all"}}, "purposes_invalid"),
])
def test_bad_input_is_refused(workspaces, kwargs, code):
    from governance.api.errors import DomainError

    with pytest.raises(DomainError) as info:
        submit(workspaces[1], **kwargs)
    if code:
        assert info.value.code == code


def test_reminders_go_to_dpos_once(workspaces, mailoutbox, role_users):
    from dsr.services import dsr_deadline_reminders

    role_users["dpo"].email = "dpo@example.com"
    role_users["dpo"].save()
    request = submit(workspaces[1])
    DataSubjectRequest.objects.filter(pk=request.pk).update(status=RequestStatus.VERIFIED,
                                                            due_at=timezone.now() + timedelta(days=2))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert dsr_deadline_reminders() == 1
    assert mailoutbox[-1].to == ["dpo@example.com"]
    assert dsr_deadline_reminders() == 0


def test_records_purged_after_keeping_period(workspaces, mailoutbox, role_users):
    from dsr.services import dsr_records_purge

    request = submit(workspaces[1])
    dsr_request_deny(request=request, actor=role_users["dpo"], reason="Could not verify identity.")
    assert dsr_records_purge() == 0
    assert dsr_records_purge(now=timezone.now() + timedelta(days=31 * 25)) == 1
    assert not DataSubjectRequest.objects.filter(pk=request.pk).exists()


def test_rectification_updates_every_store(workspaces, mailoutbox, sqlite_stores):
    """GDPR Art. 16: the corrected address reaches every field of that category."""
    from tests.dsr.conftest import subject_profile

    load_map(sqlite_stores)
    subject_profile(workspaces[1])
    request = submit_verified(workspaces[1], mailoutbox, "rectification",
                              details={"changes": [{"category": "user.contact.address", "value": "1 New Road"}]})
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert next(c for c in sqlite_stores.rows("shop", "customers") if c["id"] == 1)["address"] == "1 New Road"
    orders = sqlite_stores.rows("shop", "orders")
    assert {o["shipping_address"] for o in orders if o["customer_id"] == 1} == {"1 New Road"}
    assert "1 New Road" not in {o["shipping_address"] for o in orders if o["customer_id"] != 1}


def test_restriction_goes_through_the_consent_app(workspaces, mailoutbox):
    """GDPR Art. 18: the profile is marked so consent checks answer 'not allowed'."""
    from consent.models import ProcessingRestriction

    request = submit_verified(workspaces[1], mailoutbox, "restriction", email="someone@example.com")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert ProcessingRestriction.objects.filter(profile=request.profile, lifted_at=None).exists()


def test_rights_need_attention_when_consent_services_are_missing(workspaces, mailoutbox, monkeypatch):
    from dsr import consent_bridge

    monkeypatch.setattr(consent_bridge, "_consent_services", lambda: None)
    request = submit_verified(workspaces[1], mailoutbox, "objection", email="someone@example.com")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.NEEDS_ATTENTION
    assert "consent app's services" in request.attention_reason


def test_ccpa_specific_pieces_need_more_matching_data_points(workspaces, mailoutbox):
    """CCPA: specific pieces need the e-mail plus two matching data points and a declaration."""
    from tests.factories import make_profile

    profile = make_profile(workspaces[1], email="ca@example.com", full_name="Casey Doe", postal_code="94105")
    details = {"specific_pieces": True, "declaration_signed": True,
               "verification": {"full_name": "Casey Doe", "postal_code": "00000"}}
    request = submit(workspaces[1], email="ca@example.com", jurisdiction="US-CA", details=details)
    with pytest.raises(VerificationFailed) as info:
        dsr_request_verify(request=request, code=code_from(mailoutbox))
    assert info.value.code == "more_data_points_needed"
    details["verification"]["postal_code"] = "94105"
    request = submit(workspaces[1], email="ca@example.com", jurisdiction="US-CA", details=details)
    with inline_mode():
        request = dsr_request_verify(request=request, code=code_from(mailoutbox))
    assert request.status == RequestStatus.RUNNING and request.profile == profile


def test_opt_out_of_sale_is_recorded_as_consent(workspaces, mailoutbox):
    """CCPA §7026: opt-out of sale/sharing recorded as refused consent for the sale purposes."""
    from consent.demo import purposes_seed
    from consent.models import ConsentState

    purposes_seed()
    request = submit_verified(workspaces[1], mailoutbox, "opt_out_sale", email="ca.person@example.com",
                              jurisdiction="US-CA")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    states = {s.purpose.code: s.state for s in ConsentState.objects.filter(profile=request.profile)}
    assert states and set(states.values()) == {"refused"}
    assert "data_sale" in states
