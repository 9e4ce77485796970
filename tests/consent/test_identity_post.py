"""Identities in a POST body: the check, the state and the profile search answer as their GET forms,
so a caller never has to put an e-mail or phone in a (logged) query string."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

CHECK = "/api/v1/consent/check"
STATE = "/api/v1/consent/state"
FAST = "consent.middleware.ConsentCheckMiddleware"


def _call(method: str, key: str, params: dict, *, full_stack: bool, url: str = CHECK, **headers):
    middleware = [m for m in settings.MIDDLEWARE if not (full_stack and m == FAST)]
    with override_settings(MIDDLEWARE=middleware):
        client = Client()
        if method == "GET":
            return client.get(url, params, HTTP_AUTHORIZATION=f"Bearer {key}", **headers)
        return client.post(url, json.dumps(params), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {key}", **headers)


CASES = [
    pytest.param("secret", {"browser_id": "browser-0001", "purpose": "analytics"}, {}, 200, id="no-consent"),
    pytest.param("secret", {"identity_kind": "email", "identity_value": "a@example.com",
                            "purpose": "order_fulfilment"}, {}, 200, id="contract-basis"),
    pytest.param("secret", {"browser_id": "browser-0001"}, {}, 400, id="purpose-required"),
    pytest.param("secret", {"browser_id": "browser-0001", "purpose": "no_such_purpose"},
                 {"HTTP_ACCEPT_LANGUAGE": "ja"}, 400, id="unknown-purpose-ja"),
]
# Publishable keys never take the fast path: they need an allowed Origin (test_origin_required.py).


@pytest.mark.parametrize(("key", "params", "headers", "status"), CASES)
def test_post_check_answers_as_get_does(keys, key, params, headers, status):
    # when: the same check as GET, as POST through the middleware, and as POST through the full stack
    get = _call("GET", keys[key], params, full_stack=False, **headers)
    fast = _call("POST", keys[key], params, full_stack=False, **headers)
    full = _call("POST", keys[key], params, full_stack=True, **headers)
    # then
    assert not hasattr(fast.wsgi_request, "session") and hasattr(full.wsgi_request, "session")
    assert get.status_code == fast.status_code == full.status_code == status
    assert get.content == fast.content == full.content
    assert _same_headers(fast, full)


def test_post_check_follows_a_recorded_consent(server, keys):
    # given: a person who gave consent
    body = {"identity": {"kind": "email", "value": "hanako@example.jp"}, "purpose": "marketing_email",
            "state": "given"}
    assert server.post("/api/v1/consent/events", body, format="json").status_code in (200, 201)
    query = {"identity_kind": "email", "identity_value": "hanako@example.jp", "purpose": "marketing_email"}
    # when
    posted = _call("POST", keys["secret"], query, full_stack=False)
    got = _call("GET", keys["secret"], query, full_stack=False)
    # then
    assert posted.json()["allowed"] is True and posted.json()["profile_found"] is True
    assert posted.content == got.content


@pytest.mark.parametrize(("body", "code"), [
    ({"purpose": "analytics", "browser_id": 5}, "invalid_body"),
    (["browser_id"], "invalid_body"),
], ids=["non-string", "not-an-object"])
def test_post_check_rejects_bad_bodies_with_a_code(keys, body, code):
    response = _call("POST", keys["secret"], body, full_stack=False)
    assert response.status_code == 400 and response.json()["code"] == code


def test_post_state_answers_as_get_does(server, keys):
    server.post("/api/v1/consent/events", {"identity": {"kind": "phone", "value": "09012345678"},
                                           "purpose": "analytics", "state": "given"}, format="json")
    query = {"identity_kind": "phone", "identity_value": "09012345678"}
    got = server.get(STATE, query)
    posted = server.post(STATE, query, format="json")
    assert got.status_code == posted.status_code == 200
    assert got.json() == posted.json() and posted.json()["profile_found"] is True


def test_staff_post_state_names_the_workspace_in_the_body(api_client, role_users, workspaces, purposes):
    from governance.access.tokens import api_token_create

    _token, secret = api_token_create(user=role_users["dpo"], name="crm", scopes=["read"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    query = {"identity_kind": "email", "identity_value": "nobody@example.jp"}
    posted = api_client.post(STATE, {**query, "workspace": workspaces[0].slug}, format="json")
    got = api_client.get(STATE, {**query, "workspace": workspaces[0].slug})
    assert posted.status_code == got.status_code == 200 and posted.json() == got.json()


def test_profile_search_answers_as_the_list_does(api_client, role_users, workspaces):
    from governance.subjects.services import IdentityInput, profile_upsert

    # given: two profiles
    for email in ("hanako@example.jp", "taro@example.jp"):
        profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", email)], actor=None)
    api_client.force_authenticate(role_users["dpo"])
    # when
    listed = api_client.get("/api/v1/profiles/", {"email": "hanako@example.jp", "workspace": "shop-jp"})
    searched = api_client.post("/api/v1/profiles/search/", {"email": "hanako@example.jp", "workspace": "shop-jp"},
                               format="json")
    # then
    assert listed.status_code == searched.status_code == 200
    assert searched.json()["count"] == 1
    assert searched.json()["results"] == listed.json()["results"]
    bad = api_client.post("/api/v1/profiles/search/", {"mail": "x"}, format="json")
    assert bad.status_code == 400


def test_the_schema_documents_the_post_forms():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    check = paths["/api/v1/consent/check"]["post"]
    assert "identity_value" in json.dumps(check["requestBody"]) or check["requestBody"]["content"]
    assert "post" in paths["/api/v1/consent/state"]
    assert any(p.startswith("/api/v1/profiles/search/") and "post" in ops for p, ops in paths.items())


def _same_headers(one, other) -> bool:
    """Every header alike but the request id, which each request gets its own of."""
    assert one.headers.get("X-Request-ID") and other.headers.get("X-Request-ID")
    strip = lambda response: {k: v for k, v in response.headers.items() if k != "X-Request-ID"}  # noqa: E731
    return strip(one) == strip(other)
