"""Staff accounts as a security product needs them: second factor, lockout, session limits, tokens.

Sessions here are real: a plain ``django.test.Client`` signs in (``force_login`` or the admin's
login form) without the second factor unless the test enters a code; ``tests.accounts`` gives the
verified ones.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEntry, Outcome
from governance.access.middleware import SESSION_SEEN, SESSION_STARTED
from governance.access.models import ApiToken, token_digest
from governance.access.tokens import TokenExpiryInvalid, api_token_create
from tests.accounts import OtpVerifiedClient, totp_code, totp_device
from tests.factories import make_profile

pytestmark = pytest.mark.django_db
PASSWORD_DEFAULT = "correct horse battery staple"  # tests.factories.UserFactory

REASON = "Ticket #42 callback"
EXPORT_URL = "/api/v1/audit/reports/access_log/csv"
READ_URL = "/api/v1/audit/reports/"  # any signed-in user may list the report kinds
ADMIN_EXPORT = "/admin/audit/auditexport/new/?report=access_log"
ADMIN_EXPORT_FORM = {"report": "access_log", "format": "csv", "action": "access", "mode": "download"}


@pytest.fixture
def profile(workspaces):
    return make_profile(workspaces[0], locale="ja_JP", seed=21)


def _unverified(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _revealed(profile) -> int:
    return AuditEntry.objects.filter(object_pk=str(profile.pk), reason=REASON, outcome=Outcome.ALLOWED).count()


def _reveal_api(client, profile):
    return client.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": REASON},
                       content_type="application/json")


# --- second factor: role × endpoint ------------------------------------------------------------

# Every role that can reveal, export, change or administer needs the second factor for anything;
# marketing (view and check only) does not, but cannot change anything without it either.
MFA_ROLES = {"dpo": True, "privacy_analyst": True, "support_agent": True, "auditor": True, "marketing": False}


@pytest.mark.parametrize(("role", "required"), MFA_ROLES.items())
def test_roles_that_reveal_export_or_change_need_a_second_factor(role, required, role_users, profile):
    client = _unverified(role_users[role])
    # the API: everything is refused for a role that needs the factor; unsafe requests for all
    listed = client.get(READ_URL)
    if required:
        assert listed.status_code == 403 and listed.json()["code"] == "mfa_required"
    else:
        assert listed.status_code == 200
    unsafe = client.post("/api/v1/profiles/", {"workspace": "shop-jp", "identities": []},
                         content_type="application/json")
    assert unsafe.status_code == 403 and unsafe.json()["code"] == "mfa_required"
    # the admin: sent to enrol (no device yet) before anything else
    page = client.get("/admin/")
    if required:
        assert page.status_code == 302 and page["Location"].startswith("/account/mfa/setup/")
    else:
        assert page.status_code == 200


def test_dpo_without_second_factor_cannot_reveal_or_export_with_one_can(role_users, profile):
    dpo = role_users["dpo"]
    client = _unverified(dpo)
    # API reveal and export: 403 mfa_required, nothing revealed
    refused = _reveal_api(client, profile)
    assert refused.status_code == 403 and refused.json()["code"] == "mfa_required"
    exported = client.get(EXPORT_URL)
    assert exported.status_code == 403 and exported.json()["code"] == "mfa_required"
    # admin reveal and export: redirected to the second factor, nothing revealed or exported
    reveal_url = f"/admin/subjects/profile/{profile.pk}/reveal/"
    page = client.post(reveal_url, {"fields_to_reveal": ["full_name"], "reason": REASON})
    assert page.status_code == 302 and "/account/mfa/" in page["Location"]
    assert profile.full_name not in page.content.decode()
    page = client.post(ADMIN_EXPORT, ADMIN_EXPORT_FORM)
    assert page.status_code == 302 and "/account/mfa/" in page["Location"]
    assert _revealed(profile) == 0
    from audit.models_exports import AuditExport

    assert not AuditExport.objects.exists()

    # with the second factor entered: all four work
    verified = OtpVerifiedClient()
    verified.force_login(dpo)
    response = _reveal_api(verified, profile)
    assert response.status_code == 200 and response.json()["values"]["full_name"] == profile.full_name
    assert verified.get(EXPORT_URL).status_code == 200
    page = verified.post(reveal_url, {"fields_to_reveal": ["full_name"], "reason": REASON})
    assert page.status_code == 200 and profile.full_name in page.content.decode()
    page = verified.post(ADMIN_EXPORT, ADMIN_EXPORT_FORM)
    assert page.status_code == 200 and page["Content-Type"].startswith("text/csv")
    assert _revealed(profile) == 2


def test_mfa_can_be_switched_off(settings, role_users, profile):
    settings.MAMORU_MFA_REQUIRED = False
    response = _reveal_api(_unverified(role_users["dpo"]), profile)
    assert response.status_code == 200


def test_superuser_needs_a_second_factor(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@staff.example", PASSWORD_DEFAULT)
    response = _unverified(root).get("/admin/auth/user/")
    assert response.status_code == 302 and response["Location"].startswith("/account/mfa/setup/")


# --- enrolment and the code at login -----------------------------------------------------------

def _throttle_reset(device) -> None:
    """What waiting out django-otp's back-off after a wrong code does (1 s after the first)."""
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, throttling_failure_timestamp=None)


def _password_login(client, user, *, address="127.0.0.1", password=PASSWORD_DEFAULT, **headers):
    return client.post("/admin/login/?next=/admin/", {"username": user.username, "password": password},
                       REMOTE_ADDR=address, **headers)


def test_enrolment_after_password_login(role_users, profile):
    dpo = role_users["dpo"]
    client = Client()
    # given: the password is right, no device yet
    response = _password_login(client, dpo)
    assert response.status_code == 302
    page = client.get("/admin/")
    assert page["Location"].startswith("/account/mfa/setup/")
    # when: the enrolment page shows an inline QR code (SVG), the key and the otpauth URI
    setup = client.get(page["Location"])
    html = setup.content.decode()
    device = TOTPDevice.objects.get(user=dpo, confirmed=False)
    assert "<svg" in html and "otpauth://totp/" in html and "Mamoru" in html
    assert "http://" not in html.split("<svg", 1)[1].split("</svg>", 1)[0].replace("http://www.w3.org", "")
    assert client.get(page["Location"]).content.decode().count(device.config_url.split("secret=")[1][:16]) >= 1
    # a wrong code confirms nothing
    wrong = client.post("/account/mfa/setup/", {"code": "000000" if totp_code(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode()
    assert _reveal_api(client, profile).status_code == 403
    _throttle_reset(device)
    # then: the right code confirms the device and verifies the session
    confirmed = client.post("/account/mfa/setup/", {"code": totp_code(device), "next": "/admin/"})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/admin/"
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert client.get("/admin/").status_code == 200
    assert _reveal_api(client, profile).status_code == 200
    # the enrolment is in the audit chain (the key never is)
    event = AuditEntry.objects.filter(additional_data__event="mfa_enrolled").get()
    assert event.actor == dpo
    assert device.key not in str(list(AuditEntry.objects.values_list("changes", "additional_data")))


def test_japanese_enrolment_page(role_users):
    client = _unverified(role_users["dpo"])
    html = client.get("/account/mfa/setup/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "認証アプリ" in html and "<svg" in html


def test_code_asked_at_login_when_a_device_exists(role_users, profile):
    dpo = role_users["dpo"]
    device = totp_device(dpo)
    client = Client()
    _password_login(client, dpo)
    page = client.get("/admin/")
    assert page.status_code == 302 and page["Location"].startswith("/account/mfa/verify/")
    # the enrolment page cannot replace the device with a password only
    setup = client.get("/account/mfa/setup/")
    assert setup.status_code == 302 and setup["Location"].startswith("/account/mfa/verify/")
    assert TOTPDevice.objects.filter(user=dpo).count() == 1
    # a wrong code: still locked out of everything
    wrong = client.post("/account/mfa/verify/", {"code": "12345x"})
    assert wrong.status_code == 200 and _reveal_api(client, profile).status_code == 403
    _throttle_reset(device)
    before = client.session.session_key
    ok = client.post("/account/mfa/verify/", {"code": totp_code(device), "next": "/admin/"})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    assert client.session.session_key != before  # a new session id for the verified session
    assert client.get("/admin/").status_code == 200
    assert _reveal_api(client, profile).status_code == 200


def test_verify_page_does_not_redirect_off_site(role_users):
    dpo = role_users["dpo"]
    device = totp_device(dpo)
    client = _unverified(dpo)
    ok = client.post("/account/mfa/verify/", {"code": totp_code(device), "next": "https://evil.example/"})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"


# --- login lockout -----------------------------------------------------------------------------

def test_lockout_after_failures_per_username_and_address(settings, role_users):
    settings.AXES_FAILURE_LIMIT = 3
    settings.MAMORU_TRUSTED_PROXIES = []
    dpo = role_users["dpo"]
    client = Client()
    for attempt in range(3):
        # rotating X-Forwarded-For from an untrusted peer changes nothing
        response = _password_login(client, dpo, password="wrong password",
                                   HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}")
    assert response.status_code == 429
    # the right password is refused now too, with the wait in the page and Retry-After
    locked = _password_login(client, dpo, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert locked.status_code == 429 and locked["Retry-After"] == str(15 * 60)
    assert "15" in locked.content.decode() and "_auth_user_id" not in client.session
    # recorded in the audit chain against the account, with the client's address
    events = AuditEntry.objects.filter(additional_data__event="login_lockout")
    assert events.count() >= 2
    assert {e.object_pk for e in events} == {str(dpo.pk)} and {e.remote_addr for e in events} == {"127.0.0.1"}
    assert {e.outcome for e in events} == {Outcome.DENIED}
    # another address is not locked out (per username + address), and nor is another user
    assert _password_login(Client(), dpo, address="192.0.2.10").status_code == 302
    assert _password_login(Client(), role_users["auditor"]).status_code == 302


def test_lockout_counts_the_client_behind_a_trusted_proxy(settings, role_users):
    settings.AXES_FAILURE_LIMIT = 2
    settings.MAMORU_TRUSTED_PROXIES = ["10.0.0.0/8"]
    dpo = role_users["dpo"]
    for _ in range(2):
        _password_login(Client(), dpo, address="10.0.0.5", password="nope", HTTP_X_FORWARDED_FOR="203.0.113.7")
    # the attacker behind the proxy is locked, another client behind the same proxy is not
    assert _password_login(Client(), dpo, address="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert _password_login(Client(), dpo, address="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 302
    event = AuditEntry.objects.filter(additional_data__event="login_lockout").latest("seq")
    assert event.remote_addr == "203.0.113.7"


def test_lockout_page_in_japanese(settings, role_users):
    settings.AXES_FAILURE_LIMIT = 1
    client = Client()
    response = _password_login(client, role_users["dpo"], password="wrong", HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 429 and "ログイン" in response.content.decode()


# --- session limits ----------------------------------------------------------------------------

def _age_session(client, **ages_seconds) -> None:
    session = client.session
    now = int(time.time())
    for key, age in ages_seconds.items():
        session[key] = now - age
    session.save()


def test_idle_session_is_signed_out(settings, role_users):
    settings.MAMORU_SESSION_IDLE_MINUTES = 30
    client = OtpVerifiedClient()
    client.force_login(role_users["dpo"])
    assert client.get("/admin/").status_code == 200
    # 29 minutes idle: still signed in, and the activity is stamped
    _age_session(client, **{SESSION_SEEN: 29 * 60})
    assert client.get("/admin/").status_code == 200
    assert int(time.time()) - client.session[SESSION_SEEN] < 5
    # 31 minutes idle: signed out; the admin asks for the login, the API is refused
    _age_session(client, **{SESSION_SEEN: 31 * 60})
    response = client.get("/admin/auth/user/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert "_auth_user_id" not in client.session
    assert client.get(READ_URL).status_code in (401, 403)


def test_idle_api_session_is_signed_out(settings, role_users):
    client = OtpVerifiedClient()
    client.force_login(role_users["dpo"])
    assert client.get(READ_URL).status_code == 200
    _age_session(client, **{SESSION_SEEN: (settings.MAMORU_SESSION_IDLE_MINUTES + 1) * 60})
    assert client.get(READ_URL).status_code in (401, 403)


def test_session_has_an_absolute_lifetime(settings, role_users):
    settings.MAMORU_SESSION_MAX_HOURS = 12
    client = OtpVerifiedClient()
    client.force_login(role_users["dpo"])
    # active all along (seen a minute ago) but started 12 h 1 min ago
    _age_session(client, **{SESSION_STARTED: 12 * 3600 + 60, SESSION_SEEN: 60})
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


# --- API tokens --------------------------------------------------------------------------------

def _bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_token_without_reveal_scope_cannot_reveal(role_users, profile):
    dpo = role_users["dpo"]
    _token, read_only = api_token_create(user=dpo, name="reader", scopes=["read"])
    _token, writer = api_token_create(user=dpo, name="writer", scopes=["read", "write"])
    _token, revealer = api_token_create(user=dpo, name="revealer", scopes=["read", "reveal"])
    client = Client()
    assert client.get(f"/api/v1/profiles/{profile.pk}/", **_bearer(read_only)).status_code == 200
    refused = client.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": REASON},
                          content_type="application/json", **_bearer(read_only))
    assert refused.status_code == 403
    refused = client.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": REASON},
                          content_type="application/json", **_bearer(writer))
    assert refused.status_code == 403
    assert _revealed(profile) == 0
    allowed = client.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": REASON},
                          content_type="application/json", **_bearer(revealer))
    assert allowed.status_code == 200 and allowed.json()["values"]["full_name"] == profile.full_name


def test_token_scopes_for_export_and_write(role_users, profile):
    auditor, dpo = role_users["auditor"], role_users["dpo"]
    _t, reader = api_token_create(user=auditor, name="reader", scopes=["read"])
    _t, exporter = api_token_create(user=auditor, name="exporter", scopes=["read", "export"])
    client = Client()
    refused = client.get(EXPORT_URL, **_bearer(reader))
    assert refused.status_code == 403 and refused.json()["code"] == "token_scope"
    assert client.get(EXPORT_URL, **_bearer(exporter)).status_code == 200
    # a write needs "write", whatever the user's role allows
    body = {"workspace": "shop-jp", "identities": [{"kind": "email", "value": "hanako@example.jp"}]}
    _t, dpo_reader = api_token_create(user=dpo, name="r", scopes=["read", "reveal"])
    _t, dpo_writer = api_token_create(user=dpo, name="w", scopes=["read", "write"])
    refused = client.post("/api/v1/profiles/", body, content_type="application/json", **_bearer(dpo_reader))
    assert refused.status_code == 403
    created = client.post("/api/v1/profiles/", body, content_type="application/json", **_bearer(dpo_writer))
    assert created.status_code == 201
    # a search sent as POST (identities in the body) is a read
    searched = client.post("/api/v1/profiles/search/", {"email": "hanako@example.jp", "workspace": "shop-jp"},
                           content_type="application/json", **_bearer(dpo_reader))
    assert searched.status_code == 200 and searched.json()["count"] == 1


def test_superuser_token_is_limited_by_its_scopes(django_user_model, profile):
    root = django_user_model.objects.create_superuser("root", "root@staff.example", PASSWORD_DEFAULT)
    _t, reader = api_token_create(user=root, name="reader", scopes=["read"])
    response = Client().post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"], "reason": REASON},
                             content_type="application/json", **_bearer(reader))
    assert response.status_code == 403 and _revealed(profile) == 0
    root.refresh_from_db()
    assert root.is_superuser  # limited for that request only, never saved


def test_token_expiry_default_and_maximum(settings, role_users, profile):
    settings.MAMORU_API_TOKEN_DAYS, settings.MAMORU_API_TOKEN_MAX_DAYS = 90, 365
    token, secret = api_token_create(user=role_users["dpo"], name="default")
    assert timedelta(days=89, hours=23) < token.expires_at - timezone.now() <= timedelta(days=90)
    with pytest.raises(TokenExpiryInvalid):
        api_token_create(user=role_users["dpo"], name="forever", expires_at=timezone.now() + timedelta(days=366))
    # an expired token is refused
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().get(f"/api/v1/profiles/{profile.pk}/", **_bearer(secret))
    assert response.status_code == 401 and response.json()["code"] == "bad_token"


def test_token_last_use_is_stamped_at_most_once_a_minute(role_users, profile):
    token, secret = api_token_create(user=role_users["dpo"], name="sync")
    client = Client()
    assert client.get(READ_URL, **_bearer(secret)).status_code == 200
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    client.get(READ_URL, **_bearer(secret))
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first  # no write per request
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(seconds=61))
    client.get(READ_URL, **_bearer(secret))
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first - timedelta(seconds=1)


def test_tokens_are_created_in_the_admin_from_a_verified_session_only(role_users):
    dpo = role_users["dpo"]
    # unverified: the add page is behind the second factor
    response = _unverified(dpo).get("/admin/access/apitoken/add/")
    assert response.status_code == 302 and "/account/mfa/" in response["Location"]
    # verified: scopes and expiry chosen, the secret shown once, listed with scopes and last use
    client = OtpVerifiedClient()
    client.force_login(dpo)
    expires = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d")
    page = client.post("/admin/access/apitoken/add/", {
        "user": dpo.pk, "name": "crm-sync", "scopes": ["read", "write"],
        "expires_at_0": expires, "expires_at_1": "12:00:00",
    }, follow=True)
    html = page.content.decode()
    token = ApiToken.objects.get(name="crm-sync")
    secret = re.search(rf"mmr_{token.key_id}_[A-Za-z0-9_-]{{20,}}", html).group(0)
    assert token.scopes == ["read", "write"] and token_digest(secret) == token.digest
    listing = client.get("/admin/access/apitoken/").content.decode()
    assert secret not in listing and "Read, Write" in listing and "last used" in listing.lower()
    assert secret not in client.get(f"/admin/access/apitoken/{token.pk}/change/").content.decode()
    # too long an expiry is refused
    too_long = (timezone.now() + timedelta(days=400)).strftime("%Y-%m-%d")
    page = client.post("/admin/access/apitoken/add/", {
        "user": dpo.pk, "name": "forever", "scopes": ["read"], "expires_at_0": too_long, "expires_at_1": "12:00:00",
    })
    assert page.status_code == 200 and not ApiToken.objects.filter(name="forever").exists()


def test_existing_tokens_get_read_and_write_and_an_expiry():
    from importlib import import_module

    from django.apps import apps

    from tests.factories import UserFactory

    migration = import_module("governance.access.migrations.0002_token_scopes_and_expiry")
    user = UserFactory(username="integration")
    old = ApiToken.objects.create(user=user, name="old", key_id="abc123", digest="0" * 64, scopes=[])
    migration.existing_tokens_scope(apps, None)
    old.refresh_from_db()
    assert old.scopes == ["read", "write"]
    assert timedelta(days=89) < old.expires_at - timezone.now() <= timedelta(days=90)


def test_dpo_removes_a_lost_device_and_lifts_a_lockout(settings, role_users):
    settings.AXES_FAILURE_LIMIT = 2
    agent = role_users["support_agent"]
    lost = totp_device(agent)
    for _ in range(2):
        _password_login(Client(), agent, password="wrong")
    assert _password_login(Client(), agent).status_code == 429
    dpo = OtpVerifiedClient()
    dpo.force_login(role_users["dpo"])
    # the device is listed, its key never shown
    page = dpo.get(f"/admin/otp_totp/totpdevice/{lost.pk}/change/")
    assert page.status_code == 200 and lost.key not in page.content.decode()
    assert dpo.get(f"/admin/otp_totp/totpdevice/{lost.pk}/config/").status_code == 403
    # the DPO removes the device and the lockout
    assert dpo.post(f"/admin/otp_totp/totpdevice/{lost.pk}/delete/", {"post": "yes"}).status_code == 302
    from axes.models import AccessAttempt

    attempt = AccessAttempt.objects.get(username=agent.username)
    assert dpo.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"}).status_code == 302
    # then: the agent signs in and is asked to enrol a new device
    client = Client()
    assert _password_login(client, agent).status_code == 302
    assert client.get("/admin/")["Location"].startswith("/account/mfa/setup/")
