"""Browser test: a DPO approves a request on its admin page and watches the progress bar move
(polled by request_progress.js) until the access package link appears."""

from __future__ import annotations

import time

import pytest

from tests.dsr.conftest import (  # noqa: F401
    build_stores,
    load_map,
    mailing,
    sqlite_stores,
    subject_profile,
    submit_verified,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


def login(page, live_server, user) -> None:
    """The admin's login form, then the second step: a code from the user's authenticator device."""
    from tests.accounts import totp_code, totp_device

    device = totp_device(user)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/account/mfa/verify/**")
    page.fill("#id_code", totp_code(device))
    page.click("input[type=submit]")
    page.wait_for_selector("#mamoru-dashboard")


def test_dpo_approves_and_watches_progress(page, live_server, workspaces, role_users, sqlite_stores,  # noqa: F811
                                           mailoutbox, screenshot):
    from dsr.execution import node_run, run_inline
    from dsr.models import (
        DataSubjectRequest,
        RequestStatus,
        RequestTask,
        TaskStatus,
        WorkspaceDsrPolicy,
    )

    # given: a verified access request waiting for approval
    load_map(sqlite_stores)
    subject_profile(workspaces[0])
    WorkspaceDsrPolicy.objects.create(workspace=workspaces[0], request_type="", requires_approval=True)
    request = submit_verified(workspaces[0], mailoutbox, "access")
    assert request.status == RequestStatus.AWAITING_APPROVAL
    login(page, live_server, role_users["dpo"])
    change_url = f"{live_server.url}/admin/dsr/datasubjectrequest/{request.pk}/change/"

    # when: the DPO approves it on the request page
    page.goto(change_url)
    with page.expect_navigation():
        page.click("#request-action-approve")
    page.wait_for_selector(".messagelist")
    request.refresh_from_db()
    assert request.status == RequestStatus.RUNNING and request.approved_by == role_users["dpo"]

    # then: the request page shows the bar, which moves as nodes finish (no reload needed)
    page.goto(change_url)
    assert page.locator("#request-progress").get_attribute("value") == "0"
    first = RequestTask.objects.filter(request=request, status=TaskStatus.QUEUED).first()
    node_run(task_id=first.pk)
    # Poll the attribute from the test (the page's CSP forbids evaluating a string as script).
    progress = page.locator("#request-progress")
    deadline = time.monotonic() + 30
    while float(progress.get_attribute("value") or 0) <= 0:
        assert time.monotonic() < deadline, "the progress bar never moved"
        page.wait_for_timeout(200)
    run_inline(DataSubjectRequest.objects.get(pk=request.pk))
    assert DataSubjectRequest.objects.get(pk=request.pk).status == RequestStatus.COMPLETED
    # the status change reloads the page, which now links the package
    page.wait_for_selector("#package-link")
    assert page.locator("#request-progress").get_attribute("value") == "100"
    screenshot(page, "completed")
