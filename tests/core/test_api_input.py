"""Bad input gets a clear 4xx problem response with a machine-readable code, never a 500."""

from __future__ import annotations

import pytest

from governance.subjects.models import Profile


@pytest.fixture
def dpo_client(api_client, role_users):
    api_client.force_authenticate(role_users["dpo"])
    return api_client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("identity", "code"),
    [
        ({"kind": "email", "value": "not-an-email"}, "invalid_identity"),
        ({"kind": "phone", "value": "12"}, "invalid_identity"),
        ({"kind": "customer_id", "value": "C-1"}, "invalid_identity"),  # no namespace
        ({"kind": "browser_id", "value": "x y"}, "invalid_identity"),
        ({"kind": "passport", "value": "X"}, "invalid_choice"),
        ({"kind": "email", "value": "a@example.com", "colour": "red"}, "unknown_field"),
    ],
)
def test_malformed_identities(dpo_client, workspaces, identity, code):
    response = dpo_client.post(
        "/api/v1/profiles/", {"workspace": "shop-jp", "identities": [identity]}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["type"].endswith(code) and body["title"]
    assert Profile.objects.count() == 0


@pytest.mark.django_db
def test_unknown_top_level_and_attribute_fields(dpo_client, workspaces):
    response = dpo_client.post(
        "/api/v1/profiles/",
        {"workspace": "shop-jp", "identities": [{"kind": "email", "value": "a@example.jp"}], "nickname": "x"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "unknown_field"
    assert "nickname" in response.json()["errors"]
    response = dpo_client.post(
        "/api/v1/profiles/",
        {"workspace": "shop-jp", "identities": [{"kind": "email", "value": "a@example.jp"}],
         "attributes": {"shoe_size": "27"}},
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "unknown_field"


@pytest.mark.django_db
def test_upsert_creates_then_updates(dpo_client, workspaces):
    body = {"workspace": "shop-jp", "identities": [{"kind": "email", "value": "Yuki@Example.jp"}],
            "attributes": {"full_name": "高橋 由紀", "birth_date": "1990-04-01"}}
    first = dpo_client.post("/api/v1/profiles/", body, format="json")
    assert first.status_code == 201
    assert first.json()["attributes"]["full_name"] != "高橋 由紀"  # masked
    body["identities"] = [{"kind": "email", "value": "yuki@example.jp"}, {"kind": "phone", "value": "080-2222-3333"}]
    second = dpo_client.post("/api/v1/profiles/", body, format="json")
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert len(second.json()["identities"]) == 2


@pytest.mark.django_db
def test_bad_date_and_unknown_workspace(dpo_client, workspaces):
    response = dpo_client.post(
        "/api/v1/profiles/",
        {"workspace": "shop-jp", "identities": [{"kind": "email", "value": "a@example.jp"}], "attributes": {"birth_date": "31/02/1990"}},
        format="json",
    )
    assert response.status_code == 400 and "birth_date" in response.json()["errors"]["attributes"]
    response = dpo_client.post(
        "/api/v1/profiles/", {"workspace": "nope", "identities": [{"kind": "email", "value": "a@example.jp"}]}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "unknown_workspace"


@pytest.mark.django_db
def test_lookup_with_malformed_identity_is_400(dpo_client):
    response = dpo_client.get("/api/v1/profiles/?email=nope")
    assert response.status_code == 400 and response.json()["code"] == "invalid_identity"
    response = dpo_client.get("/api/v1/profiles/not-a-uuid/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_oversize_body_is_413(dpo_client, settings):
    settings.MAMORU_API_MAX_BODY_BYTES = 1000
    response = dpo_client.post("/api/v1/profiles/", {"workspace": "x" * 2000}, format="json")
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


@pytest.mark.django_db
def test_malformed_json_and_missing_reason(dpo_client, workspaces):
    response = dpo_client.post("/api/v1/profiles/", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    from tests.factories import make_profile

    profile = make_profile(workspaces[0])
    response = dpo_client.post(f"/api/v1/profiles/{profile.pk}/reveal/", {"fields": ["full_name"]}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["errors"]


def test_framework_errors_have_plain_titles(dpo_client, workspaces):
    """DRF's messages carry placeholders ("{method}"); problem titles do not, details name the value."""
    wrong_method = dpo_client.put("/api/v1/profiles/", {}, format="json")
    wrong_type = dpo_client.post("/api/v1/profiles/", "a=b", content_type="text/plain")
    assert (wrong_method.status_code, wrong_type.status_code) == (405, 415)
    for response, value in ((wrong_method, "PUT"), (wrong_type, "text/plain")):
        problem = response.json()
        assert "{" not in problem["title"] and value in problem["detail"], problem


def test_problem_titles_follow_accept_language(dpo_client, workspaces):
    bad = {"workspace": "shop-jp", "identities": [{"kind": "email", "value": "not-an-email"}]}
    en = dpo_client.post("/api/v1/profiles/", bad, format="json").json()
    ja = dpo_client.post("/api/v1/profiles/", bad, format="json", HTTP_ACCEPT_LANGUAGE="ja").json()
    assert en["code"] == ja["code"] and en["title"] != ja["title"]
    assert ja["title"].endswith("。")  # Japanese sentence; the code stays the contract


@pytest.mark.django_db
def test_anonymous_gets_401(api_client):
    response = api_client.get("/api/v1/profiles/")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_openapi_schema_and_docs(api_client, role_users):
    schema = api_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/profiles/" in paths or "/api/v1/profiles" in paths
    docs = api_client.get("/api/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()
