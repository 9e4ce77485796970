"""The request page in the admin: progress panel, per-request actions and the progress endpoint."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(workspaces, mailoutbox):
    from dsr.models import RequestStatus, WorkspaceDsrPolicy
    from tests.dsr.conftest import submit_verified

    WorkspaceDsrPolicy.objects.create(workspace=workspaces[0], request_type="", requires_approval=True)
    request = submit_verified(workspaces[0], mailoutbox, "access")
    assert request.status == RequestStatus.AWAITING_APPROVAL
    return request


def test_panel_and_approve_button(client, waiting, role_users):
    from dsr.models import RequestStatus

    client.force_login(role_users["dpo"])
    page = client.get(f"/admin/dsr/datasubjectrequest/{waiting.pk}/change/").content.decode()
    assert 'id="request-progress"' in page and 'id="request-action-approve"' in page
    assert "audit/request_progress.js" in page and "<noscript>" not in page  # waiting: no refresh
    response = client.post("/admin/dsr/datasubjectrequest/",
                           {"action": "approve", "_selected_action": [str(waiting.pk)], "index": "0"})
    assert response.status_code == 302, response.content[:2000]
    waiting.refresh_from_db()
    assert waiting.status in (RequestStatus.RUNNING, RequestStatus.COMPLETED)


def test_progress_endpoint_is_scoped(api_client, waiting, role_users, workspaces):
    api_client.force_authenticate(role_users["dpo"])
    data = api_client.get(f"/api/v1/audit/requests/{waiting.pk}/progress").json()
    assert data["status"] == "awaiting_approval" and data["percent"] == 0 and "nodes done" in data["text"]
    api_client.force_authenticate(role_users["marketing"])
    assert api_client.get(f"/api/v1/audit/requests/{waiting.pk}/progress").status_code == 404
