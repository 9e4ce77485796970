"""Fix-and-retry follows the fix (issue 12, finding 4).

The request used to keep a snapshot of the old data map, so a retry after fixing the map failed
the same way. A retry now re-plans with the data map as it is then; done nodes stay done, an
erasure that ran is not repeated, a half-done one resumes, and every map version is on the
timeline.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from django.test import TestCase

from dsr import demo
from dsr.execution import inline_mode, run_inline
from dsr.models import RequestStatus, TaskStatus
from dsr.services import dsr_request_retry
from governance.datamap.services import datamap_load_text
from tests.dsr.conftest import SUBJECT_ID, subject_profile, submit_verified

pytestmark = pytest.mark.django_db


def _map_text(stores, **kwargs) -> str:
    return demo.datamap_yaml(shop_url=stores.shop_url, crm_url=stores.crm_url, mailing_url=stores.mailing_url,
                             token="test-token", attempts=2, backoff=0.01, **kwargs)


def _retry(request) -> None:
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        dsr_request_retry(request=request, actor=None)
    run_inline(request)
    request.refresh_from_db()


def test_retry_after_fixing_the_data_map_completes(workspaces, mailoutbox, sqlite_stores):
    stores = sqlite_stores
    datamap_load_text(text=_map_text(stores), filename="map.yaml", prune=True)
    # given the shop renamed a column after the data map was written
    engine = stores.engine("shop")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE customers RENAME COLUMN phone TO phone_number"))
    engine.dispose()
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.NEEDS_ATTENTION
    assert "access:shop.customers" in request.attention_reason and "phone" in request.attention_reason
    first_version = request.plan.get("version")
    mailing_erasure = request.tasks.get(phase="erasure", node="mailing.members")
    attempts_before = mailing_erasure.attempts
    # when the data map is fixed and staff retry
    fixed = _map_text(stores).replace("          phone: {category: user.contact.phone_number",
                                      "          phone_number: {category: user.contact.phone_number")
    assert fixed != _map_text(stores)
    datamap_load_text(text=fixed, filename="map.yaml", prune=True)
    _retry(request)
    # then the request completes with the new map, and the subject's row is erased
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    row = next(r for r in stores.rows("shop", "customers") if r["id"] == SUBJECT_ID)
    assert row["phone_number"] is None and row["address"] is None
    assert row["email"] != "subject.person@example.com"
    # the erasure that had already run (an unrelated store went ahead) was not repeated
    mailing_erasure.refresh_from_db()
    assert attempts_before == 1 and mailing_erasure.attempts == 1
    # and the request records both data-map versions, on the timeline too
    versions = [v["version"] for v in request.plan["versions"]]
    assert versions[0] == first_version and versions[-1] != first_version and len(versions) == 2
    events = list(request.events.filter(kind="datamap_version").values_list("message", flat=True))
    assert len(events) == 2 and first_version in events[0] and versions[-1] in events[1]


def test_half_done_erasure_resumes_without_reading_masked_values_as_originals(workspaces, mailoutbox,
                                                                             sqlite_stores):
    stores = sqlite_stores
    datamap_load_text(text=_map_text(stores), filename="map.yaml", prune=True)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    # given the mailing-list vendor goes down between the access and the erasure of its members
    run_inline(request, stop_before={"erasure:mailing.members"})
    stores.mailing.down = True
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.NEEDS_ATTENTION
    assert request.tasks.get(phase="erasure", node="mailing.members").status == TaskStatus.FAILED
    # when a data-map change touches that collection and staff retry once the vendor is back
    stores.mailing.down = False
    changed = _map_text(stores).replace("list_name: {category: system.operations}",
                                        "list_name: {category: system.operations, description: List}")
    datamap_load_text(text=changed, filename="map.yaml", prune=True)
    _retry(request)
    # then the erasure resumes from the original access result (not read again) and completes
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    access = request.tasks.get(phase="access", node="mailing.members")
    assert access.attempts == 1
    assert "subject.person@example.com" not in [m["email"] for m in stores.mailing.all_members()]
    event = request.events.filter(kind="datamap_version").last()
    assert "access:mailing.members" in event.data["frozen"] or "access:mailing.members" in event.data["kept"]
