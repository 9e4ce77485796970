"""An erasure crypto-shreds every Mamoru profile it covers, attributes or not.

QA (HIGH): the profile was shredded only when an attribute would change; a profile with
identities only (302 of the 502 demo profiles) stayed active after a request that ended
"completed": reveal still gave the e-mail and the consent check still found the profile.
"""

from __future__ import annotations

import pytest
from django.test import TestCase

from dsr.execution import inline_mode, run_inline
from dsr.models import RequestStatus, TaskPhase
from governance.subjects.models import Identity, Profile, ProfileStatus
from governance.subjects.selectors import profile_get_by_identity
from governance.subjects.services import IdentityInput, profile_upsert
from tests.consent.conftest import _fresh_consent_caches, keys, purposes, server, site  # noqa: F401
from tests.dsr.conftest import submit_verified

pytestmark = pytest.mark.django_db

HANAKO = "hanako.yamada@example.jp"  # identities only, as most demo profiles
TARO = "taro.sato@example.jp"  # with attributes


def _profiles(workspace):
    hanako = profile_upsert(workspace=workspace, identities=[
        IdentityInput("email", HANAKO), IdentityInput("customer_id", "4711", "shop")]).profile
    taro = profile_upsert(workspace=workspace, identities=[IdentityInput("email", TARO)],
                          attributes={"full_name": "佐藤 太郎", "postal_code": "100-0001"}).profile
    return hanako, taro


def _erase(workspace, mailoutbox, email, *, before_run=None):
    request = submit_verified(workspace, mailoutbox, "erasure", email=email)
    if before_run is not None:
        before_run(request)
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    return request


def _gone(workspace, profile, email, dpo, server):  # noqa: F811 - the consent fixture
    profile.refresh_from_db()
    assert profile.status == ProfileStatus.SHREDDED
    assert not Identity.objects.filter(profile=profile).exists()
    assert profile_get_by_identity(workspace=workspace, kind="email", value=email) is None
    listed = dpo.get("/api/v1/profiles/", {"workspace": workspace.slug, "email": email, "status": "active"})
    assert listed.status_code == 200 and listed.json()["count"] == 0, listed.content
    revealed = dpo.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["identities"], "reason": "check"},
                        format="json")
    assert revealed.status_code in (200, 404), revealed.content
    if revealed.status_code == 200:
        assert revealed.json()["values"]["identities"] == []
    check = server.get("/api/v1/consent/check", {"identity_kind": "email", "identity_value": email,
                                                 "purpose": "marketing_email"})
    assert check.status_code == 200 and check.json()["profile_found"] is False, check.content


@pytest.mark.parametrize("which", ["identities_only", "with_attributes"])
def test_erasure_shreds_the_profile_with_or_without_attributes(
        which, workspaces, mailoutbox, role_users, api_client, server):  # noqa: F811 - the fixture
    hanako, taro = _profiles(workspaces[0])
    profile, email = (hanako, HANAKO) if which == "identities_only" else (taro, TARO)
    request = _erase(workspaces[0], mailoutbox, email)
    assert request.profile_id == profile.pk
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    api_client.force_authenticate(role_users["dpo"])
    _gone(workspaces[0], profile, email, api_client, server)
    erasure = request.tasks.get(phase=TaskPhase.ERASURE, node="mamoru.profile")
    assert erasure.outcome["deleted"] == 1 and erasure.rows_changed == 1
    # the other person is untouched
    other = taro if profile == hanako else hanako
    other.refresh_from_db()
    assert other.status == ProfileStatus.ACTIVE and other.identities.count() >= 1


def test_erasure_for_every_workspace_shreds_each_identities_only_profile(workspaces, mailoutbox):
    jp = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", HANAKO)]).profile
    eu = profile_upsert(workspace=workspaces[1], identities=[IdentityInput("email", HANAKO)]).profile
    request = submit_verified(workspaces[0], mailoutbox, "erasure", email=HANAKO, all_workspaces=True)
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    assert set(Profile.objects.filter(pk__in=[jp.pk, eu.pk]).values_list("status", flat=True)) == {
        ProfileStatus.SHREDDED}
    assert not Identity.objects.filter(profile__in=[jp, eu]).exists()


def _plan_without_profile_delete(request) -> None:
    """The plan as it was made before the fix: the profile's key had no ``delete_row``, so a
    profile without attributes gets no row plan and the erasure skips it."""
    plan = request.plan
    for store in plan["stores"]:
        if store["type"] == "mamoru":
            for collection in store["collections"]:
                if collection["name"] == "profile":
                    for f in collection["fields"]:
                        if f["name"] == "id":
                            f["strategy"] = ""
    request.plan = plan
    request.save(update_fields=["plan"])


def test_verification_refuses_to_complete_while_the_profile_is_active(workspaces, mailoutbox):
    hanako, _taro = _profiles(workspaces[0])
    request = _erase(workspaces[0], mailoutbox, HANAKO, before_run=_plan_without_profile_delete)
    hanako.refresh_from_db()
    assert hanako.status == ProfileStatus.ACTIVE  # the erasure skipped it
    assert request.status == RequestStatus.NEEDS_ATTENTION
    assert "mamoru" in request.attention_reason and "profile" in request.attention_reason
    verify = request.tasks.get(phase=TaskPhase.VERIFY, node="mamoru.profile")
    assert verify.outcome["verified"] is False
    assert "not shredded" in verify.outcome["leftovers"][0]["problem"]
    assert HANAKO not in request.attention_reason and HANAKO not in verify.error



def _plan_with_hold_on_profile(request) -> None:
    """A legal hold on the profile (a retained field): the profile is kept, its attributes masked."""
    for store in request.plan["stores"]:
        if store["type"] == "mamoru":
            for collection in store["collections"]:
                if collection["name"] == "profile":
                    for f in collection["fields"]:
                        if f["name"] == "jurisdiction":
                            f["strategy"], f["legal_basis"] = "retain", "court order (test)"
    request.save(update_fields=["plan"])


def test_a_legal_hold_on_the_profile_keeps_it_and_masks_the_attributes(workspaces, mailoutbox):
    _hanako, taro = _profiles(workspaces[0])
    request = _erase(workspaces[0], mailoutbox, TARO, before_run=_plan_with_hold_on_profile)
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    taro = Profile.objects.get(pk=taro.pk)
    assert taro.status == ProfileStatus.ACTIVE and taro.full_name is None and taro.postal_code is None
    assert profile_get_by_identity(workspace=workspaces[0], kind="email", value=TARO) == taro
