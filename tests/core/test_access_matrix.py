"""Role × endpoint matrix: every allowed and denied cell, for admin and API.

Deny by default: a profile you may not see is a 404 and absent from lists; a role with no access to
profiles at all gets 403. Every successful read writes exactly one access entry per profile.
"""

from __future__ import annotations

import pytest

from audit.models import AuditEntry, Outcome
from tests.accounts import OtpVerifiedClient
from tests.factories import make_profile

ROLES = ["dpo", "privacy_analyst", "support_agent", "marketing", "auditor", "nobody"]
# role -> (list status, visible ids among (p_jp, p_eu), retrieve p_jp, retrieve p_eu)
API_MATRIX = {
    "dpo": (200, {0, 1}, 200, 200),
    "privacy_analyst": (200, {0, 1}, 200, 200),
    "support_agent": (200, {0}, 200, 404),
    "marketing": (403, set(), 403, 403),
    "auditor": (403, set(), 403, 403),
    "nobody": (403, set(), 403, 403),
}
ADMIN_MATRIX = {
    "dpo": (200, {0, 1}, 200, 200),
    "privacy_analyst": (200, {0, 1}, 200, 200),
    "support_agent": (200, {0}, 200, 404),
    "marketing": (403, set(), 403, 403),
    "auditor": (403, set(), 403, 403),
    "nobody": (403, set(), 403, 403),
}


@pytest.fixture
def two_profiles(workspaces):
    return (
        make_profile(workspaces[0], locale="ja_JP", seed=11),
        make_profile(workspaces[1], locale="en_US", seed=12),
    )


def _reads(profile) -> int:
    return AuditEntry.objects.filter(
        object_pk=str(profile.pk), action=AuditEntry.Action.ACCESS, outcome=Outcome.ALLOWED
    ).count()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_api_matrix(role, role_users, two_profiles, api_client):
    list_status, visible, get_jp, get_eu = API_MATRIX[role]
    api_client.force_authenticate(role_users[role])

    before = [_reads(p) for p in two_profiles]
    response = api_client.get("/api/v1/profiles/")
    assert response.status_code == list_status
    if list_status == 200:
        ids = {row["id"] for row in response.json()["results"]}
        assert ids == {str(two_profiles[i].pk) for i in visible}
        # One access entry per listed profile, none for hidden ones.
        assert [_reads(p) - b for p, b in zip(two_profiles, before, strict=True)] == [
            int(i in visible) for i in range(2)
        ]
        # Values are masked.
        assert all("@" not in i["value"] or "•" in i["value"] for row in response.json()["results"] for i in row["identities"])

    for profile, expected in zip(two_profiles, (get_jp, get_eu), strict=True):
        reads_before = _reads(profile)
        response = api_client.get(f"/api/v1/profiles/{profile.pk}/")
        assert response.status_code == expected, (role, profile.workspace.slug)
        assert _reads(profile) - reads_before == (1 if expected == 200 else 0)
        if expected != 200:
            assert response.json()["code"] in {"not_found", "permission_denied"}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_admin_matrix(role, role_users, two_profiles):
    list_status, visible, get_jp, get_eu = ADMIN_MATRIX[role]
    client = OtpVerifiedClient()
    client.force_login(role_users[role])

    response = client.get("/admin/subjects/profile/")
    assert response.status_code == list_status
    if list_status == 200:
        shown = {str(p.pk)[:8] for p in response.context["cl"].result_list}
        assert shown == {str(two_profiles[i].pk)[:8] for i in visible}
        assert two_profiles[0].full_name not in response.content.decode()

    for profile, expected in zip(two_profiles, (get_jp, get_eu), strict=True):
        reads_before = _reads(profile)
        response = client.get(f"/admin/subjects/profile/{profile.pk}/change/")
        assert response.status_code == expected, (role, profile.workspace.slug)
        assert _reads(profile) - reads_before == (1 if expected == 200 else 0)
        if expected == 200:
            page = response.content.decode()
            assert profile.full_name not in page  # masked by default


@pytest.mark.django_db
def test_denied_attempts_are_logged(role_users, two_profiles, api_client):
    api_client.force_authenticate(role_users["support_agent"])
    assert api_client.get(f"/api/v1/profiles/{two_profiles[1].pk}/").status_code == 404
    denied = AuditEntry.objects.get(object_pk=str(two_profiles[1].pk), outcome=Outcome.DENIED)
    assert denied.actor == role_users["support_agent"]

    api_client.force_authenticate(role_users["marketing"])
    assert api_client.get("/api/v1/profiles/").status_code == 403
    assert AuditEntry.objects.filter(actor=role_users["marketing"], outcome=Outcome.DENIED, object_pk="*").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "profile_index", "expected"),
    [
        ("dpo", 0, 200), ("dpo", 1, 200),
        ("support_agent", 0, 200), ("support_agent", 1, 404),
        ("privacy_analyst", 0, 403),  # sees masked only
        ("marketing", 0, 403),
    ],
)
def test_reveal_needs_permission_and_reason(role, profile_index, expected, role_users, two_profiles, api_client):
    profile = two_profiles[profile_index]
    api_client.force_authenticate(role_users[role])
    response = api_client.post(
        f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": "Ticket #42 callback"}, format="json"
    )
    assert response.status_code == expected
    if expected == 200:
        assert response.json()["values"]["full_name"] == profile.full_name
        entry = AuditEntry.objects.filter(object_pk=str(profile.pk), reason="Ticket #42 callback").get()
        assert entry.fields == ["full_name"] and entry.outcome == Outcome.ALLOWED
        assert entry.actor == role_users[role]
    if role == "privacy_analyst":
        assert AuditEntry.objects.filter(object_pk=str(profile.pk), outcome=Outcome.DENIED).exists()


@pytest.mark.django_db
def test_api_token_authentication_sets_the_audit_actor(role_users, two_profiles, client):
    from governance.access.tokens import api_token_create, api_token_revoke

    token, secret = api_token_create(user=role_users["dpo"], name="integration")
    response = client.get(f"/api/v1/profiles/{two_profiles[0].pk}/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    entry = AuditEntry.objects.filter(object_pk=str(two_profiles[0].pk), action=AuditEntry.Action.ACCESS).latest("seq")
    assert entry.actor == role_users["dpo"]  # not the anonymous user auditlog's middleware saw
    assert secret not in str(token.digest)
    api_token_revoke(token=token)
    response = client.get(f"/api/v1/profiles/{two_profiles[0].pk}/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401 and response.json()["code"] == "bad_token"


@pytest.mark.django_db
def test_admin_reveal_with_reason(role_users, two_profiles):
    client = OtpVerifiedClient()
    client.force_login(role_users["support_agent"])
    profile = two_profiles[0]
    url = f"/admin/subjects/profile/{profile.pk}/reveal/"
    assert profile.full_name not in client.get(url).content.decode()
    response = client.post(url, {"fields_to_reveal": ["full_name"], "reason": ""})
    assert profile.full_name not in response.content.decode()  # no reason, no reveal
    response = client.post(url, {"fields_to_reveal": ["full_name"], "reason": "Customer called, ticket 7"})
    assert profile.full_name in response.content.decode()
    assert AuditEntry.objects.filter(object_pk=str(profile.pk), reason="Customer called, ticket 7").count() == 1
