"""A background export run by a real Celery worker process: progress, then an encrypted file."""

from __future__ import annotations

import time

import pytest

from audit.models import AuditEntry, AuditExport
from oversight.exporters.services import audit_export_download, audit_export_enqueue

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_builds_the_export(live_worker, audited_profiles, role_users):
    # given
    dpo = role_users["dpo"]
    # when: queued on commit (transactional test), picked up by the worker
    export = audit_export_enqueue(user=dpo, report="access_log", fmt="jsonl", filters={})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        export.refresh_from_db()
        if export.status in ("done", "failed"):
            break
        time.sleep(0.3)
    # then
    assert export.status == "done", (export.error, live_worker.log()[-2000:])
    lines = b"".join(audit_export_download(export=export, user=dpo)).decode().splitlines()
    expected = AuditEntry.objects.filter(content_type__model="profile", seq__lte=export.params["until_seq"])
    assert len(lines) == expected.count() == export.rows_total
    assert AuditExport.objects.get(pk=export.pk).data_key_id is not None
