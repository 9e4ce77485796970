"""Free text sealed in the audit log dies with the person it is about (QA finding: reveal reasons
survived erasure because every reason was sealed under one system key that no erasure shreds).

A reason about a profile is sealed under the profile's data key, a reason about a data subject
request (deny, extend) under the request's data key; only text about no subject keeps the system
key. Once the key is shredded the History page shows the masked text and says why.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client, TestCase

from audit.freetext import KEY_OWNER, freetext_protect, freetext_reveal
from audit.models import AuditEntry
from dsr.execution import run_inline
from dsr.models import DataSubjectRequest, RequestStatus
from governance.crypto import envelope
from governance.crypto.models import DataKey
from governance.subjects.models import Profile, ProfileStatus
from tests.accounts import OtpVerifiedClient
from tests.dsr.conftest import load_map, submit_verified

pytestmark = pytest.mark.django_db

EMAIL = "zoe.erase@example.com"
PHONE = "+81 90-3333-4444"
REASON = f"{EMAIL} called from {PHONE}"
NOTE_EN = "The full text was destroyed with the person's data key"
NOTE_JA = "全文は本人のデータ鍵とともに破棄されました"


def _zoe(workspace) -> Profile:
    from governance.subjects.services import IdentityInput, profile_upsert

    return profile_upsert(workspace=workspace, identities=[IdentityInput("email", EMAIL)],
                          attributes={"full_name": "Zoe Erase"}).profile


def _reveal_entry(profile: Profile) -> AuditEntry:
    ct = ContentType.objects.get_for_model(Profile)
    return AuditEntry.objects.get(content_type=ct, object_pk=str(profile.pk), action=AuditEntry.Action.ACCESS,
                                  reason__contains="called from")


def _dpo(role_users) -> Client:
    dpo = role_users["dpo"]
    dpo.is_staff = True
    dpo.save()
    client = OtpVerifiedClient()
    client.force_login(dpo)
    return client


def test_a_reveal_reason_is_destroyed_by_the_dsr_erasure_of_the_person(workspaces, role_users, mailoutbox,
                                                                       sqlite_stores):
    load_map(sqlite_stores)
    profile = _zoe(workspaces[0])
    admin = _dpo(role_users)
    response = admin.post(f"/admin/subjects/profile/{profile.pk}/reveal/",
                          {"fields_to_reveal": ["full_name"], "reason": REASON})
    assert response.status_code == 200
    entry = _reveal_entry(profile)
    sealed = entry.additional_data["reason_enc"]
    assert EMAIL not in entry.reason and "<EMAIL_ADDRESS>" in entry.reason
    # the full text is sealed under the person's key, not the system key
    assert sealed["k"] == str(profile.data_key_id) and sealed.get("s") == 1
    assert DataKey.objects.get(pk=sealed["k"]).owner != KEY_OWNER
    history = f"/admin/subjects/profile/{profile.pk}/history/"
    assert EMAIL in admin.get(history + "?reveal_reasons=1").content.decode()  # before the erasure: readable

    # when: the person's DSR erasure runs until the profile is shredded
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=EMAIL)
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    profile.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert profile.status == ProfileStatus.SHREDDED

    # then: no one can read the full text again, and the History page says why
    envelope.dek_cache.clear()  # only the key store counts (the per-process cache is memory)
    assert freetext_reveal(sealed) is None
    reads = AuditEntry.objects.filter(fields=["reason"]).count()
    page = admin.get(history + "?reveal_reasons=1").content.decode()
    assert EMAIL not in page and "90-3333-4444" not in page
    assert "&lt;EMAIL_ADDRESS&gt; called from" in page and NOTE_EN in page
    assert "reveal_reasons=1" not in admin.get(history).content.decode()  # nothing left to show
    assert AuditEntry.objects.filter(fields=["reason"]).count() == reads  # no read of a destroyed text
    page_ja = admin.get(history, HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert NOTE_JA in page_ja


def _open_request(workspace) -> DataSubjectRequest:
    from dsr.services import dsr_request_submit

    return dsr_request_submit(workspace=workspace, request_type="access", email=EMAIL)


@pytest.mark.parametrize("action", ["deny", "extend"])
def test_dsr_reasons_are_sealed_under_the_request_key_and_die_with_its_data(workspaces, role_users, action):
    from dsr import files
    from dsr.services import dsr_request_deny, dsr_request_extend

    request = _open_request(workspaces[0])
    assert request.status not in {RequestStatus.COMPLETED, RequestStatus.REJECTED}
    service = dsr_request_deny if action == "deny" else dsr_request_extend
    request = service(request=request, actor=role_users["dpo"], reason=REASON)
    ct = ContentType.objects.get_for_model(DataSubjectRequest)
    entry = AuditEntry.objects.filter(content_type=ct, object_pk=str(request.pk),
                                      reason__contains="called from").get()
    sealed = entry.additional_data["reason_enc"]
    assert sealed["k"] == str(request.data_key_id) and sealed.get("s") == 1
    assert freetext_reveal(sealed).endswith(REASON)
    # when the request's data is destroyed (after the denial's mail, or at the end of its retention)
    files.request_data_destroy(request_id=request.id, dek_id=request.data_key_id)
    envelope.dek_cache.clear()
    assert freetext_reveal(sealed) is None


def test_text_about_no_subject_keeps_the_system_key(workspaces):
    from audit.services import CREATE, change_record

    entry = change_record(actor=None, obj=workspaces[0], action=CREATE, note=REASON)
    sealed = entry.additional_data["reason_enc"]
    assert "s" not in sealed and DataKey.objects.get(pk=sealed["k"]).owner == KEY_OWNER
    assert freetext_reveal(sealed) == REASON


def test_no_full_text_is_kept_about_an_erased_person(workspaces):
    from audit.services import access_record
    from governance.subjects.services import profile_shred

    profile = profile_shred(profile=_zoe(workspaces[0]), reason="erasure test")
    entry = access_record(actor=None, obj=profile, fields=["full_name"], reason=REASON)
    assert entry.additional_data is None and "<EMAIL_ADDRESS>" in entry.reason  # not under another key
    # an object whose key was never in the key store: masked only, too
    ghost = Profile(pk=uuid.uuid4(), workspace=workspaces[0], data_key_id=uuid.uuid4())
    assert freetext_protect(REASON, subject=ghost).sealed is None


def test_other_callers_keep_the_old_api(workspaces):
    protected = freetext_protect(REASON, max_length=20)
    assert len(protected.masked) <= 20 and freetext_reveal(protected.sealed) == REASON
    assert protected.data() == {"reason_enc": protected.sealed}
    assert freetext_protect("no personal data here").sealed is None
