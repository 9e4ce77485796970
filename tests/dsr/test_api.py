"""The DSR API: public submit/verify/status, staff actions, problem responses; package download."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.test import TestCase

from audit.models import AuditEntry
from dsr.execution import inline_mode, run_inline
from dsr.models import DataSubjectRequest, RequestStatus, WorkspaceDsrPolicy
from dsr.selectors import access_package_url
from tests.dsr.conftest import code_from, load_map, subject_profile

pytestmark = pytest.mark.django_db


def post(client, url, data):
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, data, format="json")


def test_submit_verify_status_over_the_api(api_client, workspaces, mailoutbox):
    response = post(api_client, "/api/v1/dsr/requests",
                    {"workspace": "shop-eu", "request_type": "access", "email": "a@example.com", "locale": "en"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending_verification" and body["jurisdiction"] == "EU"
    assert "email" not in body
    pk = body["id"]
    wrong = f"{(int(code_from(mailoutbox)) + 1) % 10**6:06d}"
    response = post(api_client, f"/api/v1/dsr/requests/{pk}/verify", {"code": wrong})
    assert response.status_code == 400 and response.json()["code"] == "verification_failed"
    response = post(api_client, f"/api/v1/dsr/requests/{pk}/verify", {"code": code_from(mailoutbox)})
    assert response.status_code == 200 and response.json()["status"] == "running"
    status = api_client.get(f"/api/v1/dsr/requests/{pk}/status").json()
    assert set(status["progress"]) == {"total", "done", "failed", "running", "percent"}


@pytest.mark.parametrize("data,code", [
    ({"workspace": "shop-eu", "request_type": "delete_everything", "email": "a@example.com"}, "invalid_choice"),
    ({"workspace": "shop-eu", "request_type": "access", "email": "a@example.com", "colour": "red"}, "unknown_field"),
    ({"workspace": "nowhere", "request_type": "access", "email": "a@example.com"}, "unknown_workspace"),
    ({"workspace": "shop-eu", "request_type": "access", "email": "nope"}, None),
    ({"workspace": "shop-eu", "request_type": "rectification", "email": "a@example.com"},
     "rectification_changes_required"),
])
def test_bad_input_gets_problem_responses(api_client, workspaces, data, code):
    response = post(api_client, "/api/v1/dsr/requests", data)
    assert 400 <= response.status_code < 500
    body = response.json()
    assert {"type", "title", "detail", "code"} <= set(body)
    if code:
        assert body["code"] == code, body


def test_staff_endpoints_need_permission(api_client, workspaces, role_users, mailoutbox):
    request = post(api_client, "/api/v1/dsr/requests",
                   {"workspace": "shop-eu", "request_type": "access", "email": "a@example.com"}).json()
    assert api_client.get("/api/v1/dsr/requests").status_code in (401, 403)
    api_client.force_authenticate(role_users["marketing"])
    assert api_client.get(f"/api/v1/dsr/requests/{request['id']}").status_code == 403
    assert api_client.post(f"/api/v1/dsr/requests/{request['id']}/deny", {"reason": "x" * 20}).status_code == 403
    api_client.force_authenticate(role_users["dpo"])
    detail = api_client.get(f"/api/v1/dsr/requests/{request['id']}").json()
    assert detail["timeline"][0]["kind"] == "received"
    response = api_client.post(f"/api/v1/dsr/requests/{request['id']}/deny", {"reason": "short"}, format="json")
    assert response.status_code == 400
    response = post(api_client, f"/api/v1/dsr/requests/{request['id']}/deny", {"reason": "Identity not confirmed."})
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    response = post(api_client, f"/api/v1/dsr/requests/{request['id']}/approve", {})
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"


def test_dpo_approves_over_the_api(api_client, workspaces, role_users, mailoutbox):
    WorkspaceDsrPolicy.objects.create(workspace=workspaces[1], requires_approval=True)
    pk = post(api_client, "/api/v1/dsr/requests",
              {"workspace": "shop-eu", "request_type": "access", "email": "a@example.com"}).json()["id"]
    assert post(api_client, f"/api/v1/dsr/requests/{pk}/verify",
                {"code": code_from(mailoutbox)}).json()["status"] == "awaiting_approval"
    api_client.force_authenticate(role_users["dpo"])
    response = post(api_client, f"/api/v1/dsr/requests/{pk}/approve", {})
    assert response.status_code == 200 and response.json()["status"] == "running"
    response = post(api_client, f"/api/v1/dsr/requests/{pk}/extend", {"reason": "Searching many stores."})
    assert response.status_code == 200


def test_package_link_only_for_the_verified_subject_and_every_download_audited(
        client, workspaces, mailoutbox, sqlite_stores):
    """The expiring link works for the package it names; tampered links do not; downloads audited."""
    from tests.dsr.conftest import submit_verified

    load_map(sqlite_stores)
    subject_profile(workspaces[1])
    request = submit_verified(workspaces[1], mailoutbox, "portability")
    assert access_package_url(request=request) is None  # not finished yet
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert request.status == RequestStatus.COMPLETED
    assert access_package_url(request=request)
    import re

    path = re.search(r"(?:https?://[^/\s]+)?(/dsr/packages/\S+)", mailoutbox[-1].body).group(1)
    before = AuditEntry.objects.count()
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "manifest.json" in archive.namelist()
    assert AuditEntry.objects.count() == before + 1
    entry = AuditEntry.objects.order_by("-pk").first()
    assert entry.fields == ["access_package"] and entry.object_pk == str(request.pk)
    request.package.refresh_from_db()
    assert request.package.downloads == 1
    assert client.get(path[:-3] + "xx/").status_code == 404
    # the package is encrypted at rest
    raw = open(request.package.path, "rb").read()
    assert b"PK" not in raw[:4] and b"subject.person@example.com" not in raw


def test_expired_package_link_and_file_are_gone(client, workspaces, mailoutbox, sqlite_stores):
    from datetime import timedelta

    from django.utils import timezone

    from dsr.models import AccessPackage
    from dsr.services import dsr_packages_expire
    from tests.dsr.conftest import submit_verified

    load_map(sqlite_stores)
    request = submit_verified(workspaces[1], mailoutbox, "access")
    run_inline(request)
    request = DataSubjectRequest.objects.get(pk=request.pk)
    AccessPackage.objects.filter(request=request).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert access_package_url(request=request) is None
    assert dsr_packages_expire() == 1
    request.package.refresh_from_db()
    import os

    assert request.package.deleted_at is not None and not os.path.exists(request.package.path)


def test_admin_lists_requests_with_progress_and_denies_with_reasons(admin_client, workspaces, mailoutbox):
    response = post(admin_client, "/api/v1/dsr/requests",
                    {"workspace": "shop-eu", "request_type": "erasure", "email": "a@example.com"})
    pk = response.json()["id"]
    page = admin_client.get("/admin/dsr/datasubjectrequest/")
    assert page.status_code == 200 and b"<progress" in page.content
    assert admin_client.get(f"/admin/dsr/datasubjectrequest/{pk}/change/").status_code == 200
    # One request denied from the list: its confirmation page (reason, then a preview, then confirm).
    action = admin_client.post("/admin/dsr/datasubjectrequest/", {"action": "deny", "_selected_action": [pk]})
    assert action.status_code == 302 and action.url.endswith(f"/{pk}/deny/")
    form = admin_client.get(action.url)
    assert form.status_code == 200 and b"reason" in form.content
    reason = {"reason": "Could not verify identity."}
    preview = admin_client.post(action.url, {**reason, "step": "preview"})
    assert preview.status_code == 200 and b"Could not verify identity." in preview.content
    assert DataSubjectRequest.objects.get(pk=pk).status != RequestStatus.REJECTED  # nothing done yet
    with TestCase.captureOnCommitCallbacks(execute=True):
        admin_client.post(action.url, {**reason, "step": "confirm"})
    assert DataSubjectRequest.objects.get(pk=pk).status == RequestStatus.REJECTED


DEEP_JSON = "[" * 1000 + "]" * 1000


def test_deep_json_and_lone_surrogates_are_400_for_anonymous_callers(api_client, workspaces, mailoutbox):
    # deep nesting (2 KB) on the anonymous submit and verify endpoints: a parse error, not a 500
    response = api_client.post("/api/v1/dsr/requests", DEEP_JSON, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    pk = post(api_client, "/api/v1/dsr/requests",
              {"workspace": "shop-eu", "request_type": "access", "email": "a@example.com"}).json()["id"]
    response = api_client.post(f"/api/v1/dsr/requests/{pk}/verify", DEEP_JSON, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    # a lone surrogate in details.changes[].value is refused like in any other field
    body = {"workspace": "shop-eu", "request_type": "rectification", "email": "b@example.com",
            "details": {"changes": [{"category": "user.contact.address", "value": "x\ud800"}]}}
    before = DataSubjectRequest.objects.count()
    response = api_client.post("/api/v1/dsr/requests", json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "surrogate_characters_not_allowed"
    email = api_client.post("/api/v1/dsr/requests", json.dumps({**body, "email": "b\udfff@example.com"}),
                            content_type="application/json")
    assert email.status_code == 400 and email.json()["code"] == "surrogate_characters_not_allowed"
    assert DataSubjectRequest.objects.count() == before
