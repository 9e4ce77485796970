"""When a request's data is destroyed: completion, denial, package expiry, the daily sweep — and
not before (a request that needs attention keeps what a retry needs)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import TestCase
from django.utils import timezone

from dsr.execution import run_inline
from dsr.models import AccessPackage, DataSubjectRequest, RequestStatus, TaskStatus
from dsr.package import package_stream
from dsr.services import dsr_packages_expire, dsr_records_purge, dsr_request_deny
from governance.crypto.envelope import DataKeyDestroyed
from governance.crypto.models import DataKey
from tests.dsr.conftest import load_map, subject_profile, submit_verified

pytestmark = pytest.mark.django_db

EMAIL = "subject.person@example.com"


def _dir(request) -> Path:
    return Path(settings.MAMORU_DSR_FILES_DIR) / str(request.id)


def _shredded(request) -> bool:
    key = DataKey.objects.get(pk=request.data_key_id)
    return key.destroyed_at is not None and not bytes(key.wrapped)


def test_denial_destroys_after_the_mail(workspaces, mailoutbox):
    from dsr.services import dsr_request_submit

    with TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_submit(workspace=workspaces[0], request_type="erasure", email=EMAIL)
    with TestCase.captureOnCommitCallbacks(execute=True):
        dsr_request_deny(request=request, actor=None, reason="identity could not be confirmed")
    assert mailoutbox[-1].to == [EMAIL]  # the person is told, at the address the key still opened
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert _shredded(request) and request.email is None and request.details is None
    assert request.events.filter(kind="data_destroyed").exists()


def test_access_package_is_shredded_at_expiry(workspaces, mailoutbox, sqlite_stores):
    load_map(sqlite_stores)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "access")
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert request.status == RequestStatus.COMPLETED
    # completed: the access-phase results are gone, the package (and its key) wait for the download
    assert sorted(p.name for p in _dir(request).iterdir()) == ["package.zip.enc"]
    assert not _shredded(request) and b"".join(package_stream(package=request.package))
    # when the link expires
    AccessPackage.objects.filter(request=request).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert dsr_packages_expire() == 1
    # then files and key are gone; the record keeps counts and categories
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert not _dir(request).exists() and _shredded(request) and request.email is None
    assert request.summary["access"]["rows_found"] > 0 and request.summary["access"]["categories"]
    with pytest.raises((DataKeyDestroyed, FileNotFoundError)):
        b"".join(package_stream(package=request.package))


def test_needs_attention_keeps_the_data_until_the_request_ends(workspaces, mailoutbox, sqlite_stores):
    load_map(sqlite_stores, attempts=1, backoff=0)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    with TestCase.captureOnCommitCallbacks(execute=True):
        # the access phase runs, then the mailing-list vendor goes down for the erasure phase
        while request.tasks.filter(phase="access").exclude(status=TaskStatus.DONE).exists():
            run_inline(request, max_steps=1)
        sqlite_stores.mailing.down = True
        run_inline(request)
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert request.status == RequestStatus.NEEDS_ATTENTION
    # kept for the retry: the access results already fetched and the key
    assert list(_dir(request).glob("access-*")) and not _shredded(request)
    # a store's error text that quotes a value (as some drivers do) ...
    task = request.tasks.get(status=TaskStatus.FAILED)
    task.error = f"Duplicate entry 'Subject.Person@Example.com' for key 'email'; {task.error}"
    task.save(update_fields=["error"])
    # when staff close it instead of retrying
    with TestCase.captureOnCommitCallbacks(execute=True):
        dsr_request_deny(request=request, actor=None, reason="the vendor no longer exists")
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert not _dir(request).exists() and _shredded(request)
    task.refresh_from_db()
    assert "example.com" not in task.error.lower() and "[redacted]" in task.error


def test_a_missed_clean_up_is_finished_by_the_daily_purge(workspaces, mailoutbox, sqlite_stores):
    load_map(sqlite_stores)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    run_inline(request)  # the completing transaction commits, its after-commit clean-up never runs
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert request.status == RequestStatus.COMPLETED
    assert _dir(request).exists() and not _shredded(request)
    assert dsr_records_purge() == 0  # nothing past its keeping period; the sweep runs first
    request = DataSubjectRequest.objects.get(pk=request.pk)
    assert not _dir(request).exists() and _shredded(request) and request.email is None
