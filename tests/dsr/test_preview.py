"""Erasure preview (issue 12): before the erasure runs, a dry run shows per collection which rows and
fields would change and how — values masked unless the viewer may reveal and gives a reason."""

from __future__ import annotations

import pytest
from django.test import TestCase

from dsr.execution import inline_mode, node_run
from dsr.models import RequestStatus, RequestTask, TaskPhase, TaskStatus, WorkspaceDsrPolicy
from dsr.preview import PreviewForbidden, erasure_preview, erasure_preview_reveal
from tests.dsr.conftest import SUBJECT_ID, load_map, subject_profile, submit_verified

pytestmark = pytest.mark.django_db
EMAIL = "subject.person@example.com"


def _awaiting(workspace, mailoutbox, stores):
    load_map(stores)
    subject_profile(workspace)
    WorkspaceDsrPolicy.objects.create(workspace=workspace, request_type="", requires_approval=True)
    request = submit_verified(workspace, mailoutbox, "erasure", email=EMAIL)
    assert request.status == RequestStatus.AWAITING_APPROVAL
    return request


def _access_only(request, actor):
    """Approve, then run the access nodes only (the erasure nodes stay queued)."""
    from dsr.services import dsr_request_approve

    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        dsr_request_approve(request=request, actor=actor)
    with inline_mode():
        while True:
            queued = list(RequestTask.objects.filter(request=request, phase=TaskPhase.ACCESS, status=TaskStatus.QUEUED))
            if not queued:
                break
            for task in queued:
                node_run(task_id=task.pk)
    request.refresh_from_db()
    assert not RequestTask.objects.filter(request=request, phase=TaskPhase.ERASURE, status=TaskStatus.DONE).exists()
    return request


def _subject(stores):
    return next(c for c in stores.data["customers"] if c["id"] == SUBJECT_ID)


def test_preview_before_the_access_phase_shows_strategies_and_says_what_it_needs(
        workspaces, mailoutbox, role_users, sqlite_stores, client):
    request = _awaiting(workspaces[0], mailoutbox, sqlite_stores)
    preview = erasure_preview(request=request)
    assert not preview.access_ran
    by = {c.address: c for c in preview.collections}
    assert by["crm.tickets"].action == "delete" and by["shop.customers"].action == "mask"
    assert by["mamoru.profile"].action == "shred"
    how = {f.name: (f.strategy, f.changes) for f in by["shop.customers"].fields}
    assert how["email"] == ("hash", None) and how["phone"] == ("null", None)
    # orders: a legal hold keeps the row; shipping_address is nulled, placed_at kept
    orders = {f.name: f for f in by["shop.orders"].fields}
    assert orders["placed_at"].strategy == "retain" and orders["shipping_address"].strategy == "null"

    # shown on the admin page of the request, before approval
    client.force_login(role_users["dpo"])
    page = client.get(f"/admin/dsr/datasubjectrequest/{request.pk}/change/").content.decode()
    assert 'id="erasure-preview"' in page and 'id="erasure-preview-needs-access"' in page
    assert 'data-collection="crm.tickets"' in page and 'id="request-action-approve"' in page


def test_preview_from_access_results_counts_rows_and_masks_values(workspaces, mailoutbox, role_users,
                                                                   sqlite_stores, client):
    from audit.models import AuditEntry

    request = _access_only(_awaiting(workspaces[0], mailoutbox, sqlite_stores), role_users["dpo"])
    subject = _subject(sqlite_stores)
    orders = [o for o in sqlite_stores.data["orders"] if o["customer_id"] == SUBJECT_ID]

    preview = erasure_preview(request=request)
    assert preview.access_ran
    by = {c.address: c for c in preview.collections}
    customers = by["shop.customers"]
    assert (customers.rows_found, customers.rows_mask, customers.rows_delete) == (1, 1, 0)
    assert {f.name: f.changes for f in customers.fields} == {"email": 1, "name": 1, "phone": 1, "address": 1}
    assert (by["shop.orders"].rows_found, by["shop.orders"].rows_mask) == (len(orders), len(orders))
    assert {f.name: f.changes for f in by["shop.orders"].fields}["placed_at"] == 0  # retained
    assert (by["crm.tickets"].rows_delete, by["crm.tickets"].rows_mask) == (1, 0)
    assert (by["mailing.members"].rows_delete, by["mailing.members"].rows_found) == (1, 1)
    # examples are masked: no value of the person
    text = repr(preview.as_dict())
    assert subject["email"] not in text and subject["phone"] not in text and subject["address"] not in text
    assert "NULL" in text

    # the admin page shows counts, never the values
    client.force_login(role_users["privacy_analyst"])
    page = client.get(f"/admin/dsr/datasubjectrequest/{request.pk}/change/").content.decode()
    assert 'data-collection="shop.customers"' in page and 'class="rows-mask">1<' in page
    assert subject["email"] not in page and subject["phone"] not in page

    # a role without reveal is refused (and the attempt audited) ...
    url = f"/admin/dsr/datasubjectrequest/{request.pk}/erasure-preview/"
    page = client.post(url, {"reason": "checking the erasure before approval"}, follow=True).content.decode()
    assert subject["email"] not in page
    with pytest.raises(PreviewForbidden):
        erasure_preview_reveal(request=request, actor=role_users["privacy_analyst"], reason="because I want to")
    assert AuditEntry.objects.filter(object_pk=str(request.pk), outcome="denied").count() == 2

    # ... a DPO sees the values with a reason, recorded in the audit log
    client.force_login(role_users["dpo"])
    assert "reason" in client.post(url, {"reason": "short"}).content.decode()  # too short: form error
    page = client.post(url, {"reason": "checking the erasure before approval"}).content.decode()
    assert subject["email"] in page and subject["phone"] in page
    entry = AuditEntry.objects.filter(object_pk=str(request.pk), outcome="allowed", fields=["erasure_preview"]).get()
    assert entry.reason == "checking the erasure before approval"


def test_preview_after_the_erasure_ran_and_its_files_were_destroyed(workspaces, mailoutbox, role_users,
                                                                     sqlite_stores, client):
    """A finished request's results are gone (files deleted, key shredded): the page still opens."""
    from dsr.execution import run_inline

    request = _access_only(_awaiting(workspaces[0], mailoutbox, sqlite_stores), role_users["dpo"])
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    preview = erasure_preview(request=request)
    assert not preview.access_ran and all(not c.examples for c in preview.collections)
    client.force_login(role_users["dpo"])
    response = client.get(f"/admin/dsr/datasubjectrequest/{request.pk}/change/")
    assert response.status_code == 200 and 'id="erasure-preview"' in response.content.decode()


def test_preview_is_only_for_erasure_requests(workspaces, mailoutbox, sqlite_stores):
    from dsr.services import DsrInvalid

    load_map(sqlite_stores)
    request = submit_verified(workspaces[1], mailoutbox, "access", email=EMAIL)
    with pytest.raises(DsrInvalid):
        erasure_preview(request=request)

