"""Hostile JSON bodies get a 400 problem, never a 500: nesting that blows Python's recursion limit
(2 KB, anonymous callers included) and lone surrogates (``"\\ud800"``), which no UTF-8 response
or database can hold."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client, override_settings

from governance.api.errors import problem_response
from governance.api.parsers import MAX_JSON_DEPTH, JSONTooDeep, json_loads

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000
FAST = "consent.middleware.ConsentCheckMiddleware"


def _post(url: str, body: str, *, key: str | None = None, full_stack: bool = False):
    middleware = [m for m in settings.MIDDLEWARE if not (full_stack and m == FAST)]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    with override_settings(MIDDLEWARE=middleware):
        return Client().post(url, body, content_type="application/json", **headers)


def _assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["type"].endswith(code) and body["title"], body
    return body


@pytest.mark.parametrize("full_stack", [False, True], ids=["fast-path", "full-stack"])
@pytest.mark.parametrize("body", [DEEP, '{"purpose": ' + DEEP + "}",
                                  '{"purpose": "analytics", "x": ' + "[" * 65 + "]" * 65 + "}"])
def test_deep_json_on_the_consent_check_is_a_parse_error(keys, body, full_stack):
    response = _post("/api/v1/consent/check", body, key=keys["secret"], full_stack=full_stack)
    _assert_problem(response, 400, "parse_error")


@pytest.mark.parametrize("url", ["/api/v1/consent/state", "/api/v1/consent/events"])
def test_deep_json_on_other_endpoints_is_a_parse_error(keys, url):
    _assert_problem(_post(url, DEEP, key=keys["secret"]), 400, "parse_error")


def test_deep_json_on_the_profile_search_is_a_parse_error(api_client, role_users):
    api_client.force_authenticate(role_users["dpo"])
    response = api_client.post("/api/v1/profiles/search/", DEEP, content_type="application/json")
    _assert_problem(response, 400, "parse_error")


@pytest.mark.parametrize("full_stack", [False, True], ids=["fast-path", "full-stack"])
def test_lone_surrogate_in_the_check_is_refused(keys, full_stack):
    # given: what json.dumps writes for a lone surrogate ("m\ud800")
    body = json.dumps({"purpose": "m\ud800", "browser_id": "b-7f3a9c2e41xx"})
    # when
    response = _post("/api/v1/consent/check", body, key=keys["secret"], full_stack=full_stack)
    # then
    problem = _assert_problem(response, 400, "surrogate_characters_not_allowed")
    assert "U+D800" in problem["detail"]


def test_surrogate_pairs_written_as_escapes_are_text(keys):
    # an emoji escaped as a surrogate pair (ensure_ascii clients) is ordinary text: unknown purpose
    body = json.dumps({"purpose": "m\U0001f600", "browser_id": "b-7f3a9c2e41xx"})
    assert "\\ud83d\\ude00" in body
    response = _post("/api/v1/consent/check", body, key=keys["secret"])
    _assert_problem(response, 400, "unknown_purpose")


def test_a_problem_with_a_lone_surrogate_still_renders():
    response = problem_response(status_code=400, code="unknown_purpose", title="Unknown purpose.",
                                detail="Unknown purpose: m\ud800", extra={"errors": {"x\udfff": ["\ud800"]}})
    body = json.loads(response.content)
    assert body["detail"] == "Unknown purpose: m\ufffd" and body["errors"] == {"x\ufffd": ["\ufffd"]}


def test_json_loads_limits():
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_loads(nested) is not None and json_loads(nested.encode()) is not None
    for too_deep in ("[" + nested + "]", ("[" + nested + "]").encode(), DEEP, DEEP.encode()):
        with pytest.raises(JSONTooDeep):
            json_loads(too_deep)
    with pytest.raises(ValueError):
        json_loads("NaN")
    assert json_loads('["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]
