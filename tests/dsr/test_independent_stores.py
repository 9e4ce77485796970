"""One store's failure does not stop unrelated stores (issue 12, finding 6).

A failed node blocks only what depends on it. The request needs attention once every node that
can run has run, with the reasons of the failed store only, and the DPOs are e-mailed in their
language.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import TestCase

from dsr import demo
from dsr.execution import run_inline
from dsr.models import RequestStatus, StaffMailPreference, TaskStatus
from governance.datamap.services import datamap_load_text
from tests.dsr.conftest import SUBJECT_ID, subject_profile, submit_verified

pytestmark = pytest.mark.django_db

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"  # discard port: connection refused


def _dpos() -> None:
    group, _ = Group.objects.get_or_create(name="dpo")
    users = get_user_model().objects
    ja = users.create_user("dpo-ja", email="dpo-ja@example.com", password="x")
    en = users.create_user("dpo-en", email="dpo-en@example.com", password="x")
    for user in (ja, en):
        user.groups.add(group)
    StaffMailPreference.objects.create(user=ja, language="ja")


@pytest.mark.parametrize("failing", ["crm_unreachable", "mailing_down"])
def test_other_stores_finish_and_only_the_failed_store_is_reported(workspaces, mailoutbox, sqlite_stores,
                                                                     failing, admin_client):
    stores = sqlite_stores
    crm_url = UNREACHABLE if failing == "crm_unreachable" else stores.crm_url
    text = demo.datamap_yaml(shop_url=stores.shop_url, crm_url=crm_url, mailing_url=stores.mailing_url,
                             token="test-token", attempts=2, backoff=0.01)
    datamap_load_text(text=text, filename="map.yaml", prune=True)
    stores.mailing.down = failing == "mailing_down"
    bad = "crm" if failing == "crm_unreachable" else "mailing"
    _dpos()
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    before = len(mailoutbox)
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    # the request needs attention ...
    assert request.status == RequestStatus.NEEDS_ATTENTION
    tasks = {t.key: t for t in request.tasks.all()}
    # ... after every other store's access, erasure and verification ran to the end
    for key, task in tasks.items():
        store = task.node.split(".", 1)[0]
        if store == bad:
            assert task.status in {TaskStatus.FAILED, TaskStatus.PENDING}, key
        else:
            assert task.status == TaskStatus.DONE, (key, task.status, task.error)
    assert {"verify:shop.customers", "verify:shop.orders", "verify:mamoru.profile"} <= set(tasks)
    failed = [k for k, t in tasks.items() if t.status == TaskStatus.FAILED]
    assert failed and all(k.split(":", 1)[1].startswith(bad + ".") for k in failed)
    # the reasons name only the failed store (and what waits on it)
    reason = request.attention_reason
    assert f"{failed[0]}: " in reason and "gave up after 2 attempts" in reason
    others = {"crm", "mailing"} - {bad}
    assert not any(f":{o}." in reason or f" {o}." in reason for o in others | {"shop", "mamoru"})
    # the shop's data really was erased
    row = next(r for r in stores.rows("shop", "customers") if r["id"] == SUBJECT_ID)
    assert row["email"] != "subject.person@example.com" and row["phone"] is None
    # and the DPOs were told, each in their language
    staff = [m for m in mailoutbox[before:] if "dpo-" in m.to[0]]
    by_to = {m.to[0]: m for m in staff}
    assert set(by_to) == {"dpo-ja@example.com", "dpo-en@example.com"}
    short = str(request.id)[:8]
    assert short in by_to["dpo-en@example.com"].subject and "needs attention" in by_to["dpo-en@example.com"].subject
    assert short in by_to["dpo-ja@example.com"].subject and "対応が必要" in by_to["dpo-ja@example.com"].subject
    assert failed[0] in by_to["dpo-ja@example.com"].body
    assert "subject.person@example.com" not in by_to["dpo-en@example.com"].body
    # the admin request page opens with the reasons
    page = admin_client.get(f"/admin/dsr/datasubjectrequest/{request.pk}/change/").content.decode()
    assert failed[0] in page
    assert page.index("field-attention_reason") < page.index("field-workspace")
