"""Issue 13, finding 5: a publishable site key works only from a browser on one of the site's
allowed origins. Without ``Origin`` any client could take the key from the site's pages and record
"given" for any browser id; it is refused (403 ``origin_required``) on every endpoint, including
the consent check's fast path (ConsentCheckMiddleware). Secret keys keep working from servers."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings
from rest_framework.test import APIClient

from consent.authentication import ERR_ORIGIN_REQUIRED

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/consent/events"
CHECK = "/api/v1/consent/check"
STATE = "/api/v1/consent/state"
FAST = "consent.middleware.ConsentCheckMiddleware"
GIVEN = {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"}


def _client(key: str, **headers) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}", **headers)
    return client


def test_a_publishable_key_without_origin_records_nothing(keys):
    from consent.models import ConsentEvent

    # when: a script (no browser, no Origin) posts "given" with the key from the site's pages
    response = _client(keys["publishable"]).post(EVENTS, GIVEN, format="json")
    # then: refused with a code and a message that tells the site's developer what to do
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "origin_required" and body["detail"] == ERR_ORIGIN_REQUIRED
    assert "mcsk_" in body["detail"] and "Origin" in body["detail"]
    assert not ConsentEvent.objects.exists()


@pytest.mark.parametrize(("method", "path", "data"), [
    ("get", CHECK, {"browser_id": "browser-0001", "purpose": "analytics"}),
    ("get", STATE, {"browser_id": "browser-0001"}),
    ("post", CHECK, {"browser_id": "browser-0001", "purpose": "analytics"}),
], ids=["check", "state", "check-post"])
def test_every_endpoint_refuses_a_publishable_key_without_origin(keys, method, path, data):
    kwargs = {"format": "json"} if method == "post" else {}
    response = getattr(_client(keys["publishable"]), method)(path, data, **kwargs)
    assert response.status_code == 403 and response.json()["code"] == "origin_required"


@pytest.mark.parametrize("full_stack", [False, True], ids=["fast-path", "full-stack"])
def test_the_check_fast_path_refuses_a_publishable_key_without_origin(keys, full_stack):
    # given: the consent check served with and without ConsentCheckMiddleware
    middleware = [m for m in settings.MIDDLEWARE if not (full_stack and m == FAST)]
    with override_settings(MIDDLEWARE=middleware):
        response = Client().get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"},
                                HTTP_AUTHORIZATION=f"Bearer {keys['publishable']}")
    # then: refused either way (the middleware leaves publishable keys to the full stack)
    assert response.status_code == 403 and response.json()["code"] == "origin_required"
    assert hasattr(response.wsgi_request, "session")


def test_a_publishable_key_from_an_allowed_origin_works(keys):
    from consent.models import ConsentEvent

    browser = _client(keys["publishable"], HTTP_ORIGIN="https://shop.example")
    assert browser.post(EVENTS, GIVEN, format="json").status_code == 201
    check = browser.get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"})
    assert check.status_code == 200 and check.json()["allowed"] is True
    assert ConsentEvent.objects.count() == 1
    # the key's scope still applies from a browser
    email = browser.get(CHECK, {"identity_kind": "email", "identity_value": "a@example.com", "purpose": "analytics"})
    assert email.status_code == 403


def test_a_publishable_key_from_another_origin_is_refused(keys):
    other = _client(keys["publishable"], HTTP_ORIGIN="https://evil.example")
    response = other.post(EVENTS, GIVEN, format="json")
    assert response.status_code == 403 and response.json()["code"] == "origin_not_allowed"


def test_secret_keys_work_without_origin(keys):
    server = _client(keys["secret"])
    assert server.post(EVENTS, GIVEN, format="json").status_code == 201
    fast = Client().get(CHECK, {"browser_id": "browser-0001", "purpose": "analytics"},
                        HTTP_AUTHORIZATION=f"Bearer {keys['secret']}")
    # answered by the fast path (no session), as before
    assert fast.status_code == 200 and fast.json()["allowed"] is True
    assert not hasattr(fast.wsgi_request, "session")
