"""ConsentCheckMiddleware answers site-key checks ahead of the general middleware stack, with the
same response the full stack gives."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

CHECK = "/api/v1/consent/check"
FAST = "consent.middleware.ConsentCheckMiddleware"


def _get(key: str, params: dict, *, full_stack: bool, **headers):
    """One check, either way; a new client each time (its handler loads MIDDLEWARE afresh)."""
    middleware = [m for m in settings.MIDDLEWARE if not (full_stack and m == FAST)]
    with override_settings(MIDDLEWARE=middleware):
        return Client().get(CHECK, params, HTTP_AUTHORIZATION=f"Bearer {key}", **headers)


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
def test_the_middleware_answers_as_the_full_stack_does(keys, key, params, headers, status):
    # when
    fast = _get(keys[key], params, full_stack=False, **headers)
    full = _get(keys[key], params, full_stack=True, **headers)
    # then: served without sessions (the middleware answered) and identical to the full stack's
    assert not hasattr(fast.wsgi_request, "session") and hasattr(full.wsgi_request, "session")
    assert fast.status_code == full.status_code == status
    assert fast.content == full.content
    assert _same_headers(fast, full)


@pytest.mark.parametrize(("key", "headers"), [
    ("publishable", {"HTTP_ORIGIN": "https://shop.example"}),  # a browser call: CORS rules apply
    ("secret", {"HTTP_COOKIE": "sessionid=abc"}),  # may be a staff session
], ids=["origin", "cookie"])
def test_browser_calls_and_cookies_take_the_full_stack(keys, key, headers):
    response = _get(keys[key], {"browser_id": "browser-0001", "purpose": "analytics"},
                    full_stack=False, **headers)
    assert response.status_code == 200 and hasattr(response.wsgi_request, "session")


def test_unknown_keys_take_the_full_stack(keys):
    response = _get("mcsk_nope_nope", {"browser_id": "browser-0001", "purpose": "analytics"}, full_stack=False)
    assert response.status_code == 401 and response.json()["code"] == "bad_site_key"
    assert hasattr(response.wsgi_request, "session")


def test_error_titles_follow_accept_language(keys):
    params = {"browser_id": "browser-0001", "purpose": "no_such_purpose"}
    ja = _get(keys["secret"], params, full_stack=False, HTTP_ACCEPT_LANGUAGE="ja").json()
    en = _get(keys["secret"], params, full_stack=False).json()
    assert en["title"] == "The purpose is not in the published catalogue."
    assert ja["title"] == "この利用目的は公開中のカタログにありません。"
    assert ja["code"] == en["code"] == "unknown_purpose"  # the code is the contract, in every language


def _same_headers(one, other) -> bool:
    """Every header alike but the request id, which each request gets its own of."""
    assert one.headers.get("X-Request-ID") and other.headers.get("X-Request-ID")
    strip = lambda response: {k: v for k, v in response.headers.items() if k != "X-Request-ID"}  # noqa: E731
    return strip(one) == strip(other)
