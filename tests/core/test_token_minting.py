"""Who an API token is made for (issue 13 QA): staff mint tokens only for themselves in the admin;
the operator's ``create_api_token`` names the user and refuses a zero-day expiry; a token without
``read`` is told its scope is missing, not that its role sees no profiles."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from governance.access.models import ApiToken
from governance.access.tokens import api_token_create
from tests.accounts import OtpVerifiedClient
from tests.factories import make_profile

pytestmark = pytest.mark.django_db
ADD_URL = "/admin/access/apitoken/add/"
REASON = "Ticket #13 impersonation check"
ALL_SCOPES = ["read", "write", "reveal", "export", "admin"]


def _bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@staff.example", "correct horse battery staple")


def test_dpo_cannot_mint_a_token_for_a_superuser_in_the_admin(role_users, root, workspaces):
    profile = make_profile(workspaces[0], locale="ja_JP", seed=21)
    dpo = role_users["dpo"]
    client = OtpVerifiedClient()
    client.force_login(dpo)
    page = client.get(ADD_URL).content.decode()
    assert 'name="user"' not in page and ">root<" not in page  # no one else to choose
    expires = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d")
    # QA's reproduction (mint.py): the superuser's id posted with every scope
    response = client.post(ADD_URL, {
        "user": root.pk, "name": "impersonate", "scopes": ALL_SCOPES,
        "expires_at_0": expires, "expires_at_1": "12:00:00", "_save": "Save",
    }, follow=True)
    assert response.status_code == 200
    assert not ApiToken.objects.filter(user=root).exists()
    token = ApiToken.objects.get(name="impersonate")
    assert token.user == dpo
    secret = re.search(rf"mmr_{token.key_id}_[A-Za-z0-9_-]{{20,}}", response.content.decode()).group(0)
    # what it does is done, and audited, as the DPO
    revealed = Client().post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": REASON},
                             content_type="application/json", **_bearer(secret))
    assert revealed.status_code == 200
    entry = AuditEntry.objects.get(object_pk=str(profile.pk), reason=REASON)
    assert entry.actor_id == dpo.pk


def test_a_superuser_too_creates_tokens_only_for_itself(root, role_users):
    client = OtpVerifiedClient()
    client.force_login(root)
    expires = (timezone.now() + timedelta(days=7)).strftime("%Y-%m-%d")
    client.post(ADD_URL, {"user": role_users["dpo"].pk, "name": "for-dpo", "scopes": ["read"],
                          "expires_at_0": expires, "expires_at_1": "12:00:00"})
    assert ApiToken.objects.get(name="for-dpo").user == root
    assert not ApiToken.objects.filter(user=role_users["dpo"]).exists()


def test_create_api_token_refuses_zero_days_and_names_its_user(settings, role_users):
    settings.MAMORU_API_TOKEN_DAYS = 90
    for days in ("0", "-3"):
        with pytest.raises(CommandError, match="at least 1"):
            call_command("create_api_token", "dpo", "sync", "--days", days, stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()
    out = StringIO()
    call_command("create_api_token", "dpo", "sync", "--days", "1", stdout=out, stderr=StringIO())
    token = ApiToken.objects.get(name="sync")
    assert token.user == role_users["dpo"] and out.getvalue().strip().startswith(f"mmr_{token.key_id}_")
    assert timedelta(hours=23) < token.expires_at - timezone.now() <= timedelta(days=1)


def test_token_without_read_is_told_its_scope_is_missing(role_users, workspaces):
    profile = make_profile(workspaces[0], locale="ja_JP", seed=5)
    _t, revealer = api_token_create(user=role_users["dpo"], name="reveal-only", scopes=["reveal"])
    client = Client()
    for response in (client.get("/api/v1/profiles/", **_bearer(revealer)),
                     client.get(f"/api/v1/profiles/{profile.pk}/", **_bearer(revealer))):
        body = response.json()
        assert response.status_code == 403 and body["code"] == "token_scope", body
        assert "'read' scope" in body["detail"] and "role" not in body["detail"]
    ja = client.get("/api/v1/profiles/", HTTP_ACCEPT_LANGUAGE="ja", **_bearer(revealer)).json()
    assert ja["code"] == "token_scope" and "スコープ" in ja["detail"]
    # a role that sees no profiles, with a token that may read, is still told it is the role
    _t, marketing = api_token_create(user=role_users["marketing"], name="m", scopes=["read"])
    body = client.get("/api/v1/profiles/", **_bearer(marketing)).json()
    assert body["code"] != "token_scope" and "role" in body["detail"]
