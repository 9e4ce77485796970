"""Reads of requests: progress, timeline, the package link."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from dsr.models import AccessPackage, DataSubjectRequest, RequestStatus, TaskStatus
from governance.links import absolute_link

PACKAGE_SALT = "dsr.package"


def dsr_request_progress(*, request: DataSubjectRequest) -> dict:
    """Counts of the request's nodes: total, done, failed, running, and percent done."""
    statuses = list(request.tasks.values_list("status", flat=True))
    total = len(statuses)
    done = statuses.count(TaskStatus.DONE)
    failed = statuses.count(TaskStatus.FAILED)
    running = sum(1 for s in statuses if s in {TaskStatus.RUNNING, TaskStatus.QUEUED, TaskStatus.RETRY_WAIT})
    if request.status == RequestStatus.COMPLETED:
        percent = 100
    else:
        percent = int(done * 100 / total) if total else 0
    return {"total": total, "done": done, "failed": failed, "running": running, "percent": percent}


def dsr_request_timeline(*, request: DataSubjectRequest) -> list[dict]:
    """The request's events, oldest first (no personal data in them)."""
    return [
        {"at": e.at, "kind": e.kind, "message": e.message,
         "actor": getattr(e.actor, "username", None) if e.actor_id else None}
        for e in request.events.select_related("actor")
    ]


def package_token(*, package: AccessPackage) -> str:
    return signing.dumps({"p": str(package.id), "r": str(package.request_id)}, salt=PACKAGE_SALT)


def package_from_token(*, token: str) -> AccessPackage | None:
    """The package a download link names, if the link is genuine and not expired."""
    max_age = getattr(settings, "MAMORU_DSR_PACKAGE_DAYS", 14) * 86400
    try:
        data = signing.loads(token, salt=PACKAGE_SALT, max_age=max_age)
    except signing.BadSignature:
        return None
    package = AccessPackage.objects.select_related("request").filter(pk=data.get("p"), request_id=data.get("r")).first()
    if package is None or package.deleted_at or package.expires_at <= timezone.now():
        return None
    if package.request.verified_at is None:
        return None
    return package


def access_package_url(*, request: DataSubjectRequest, base_url: str = "") -> str | None:
    """An expiring signed download link for the verified subject, or None (no package yet).

    Absolute under ``MAMORU_PUBLIC_URL``, else under ``base_url`` (the page's own request), else
    under the base captured when the request was submitted (what a worker's mail uses).
    """
    if request.verified_at is None or request.status != RequestStatus.COMPLETED:
        return None
    package = AccessPackage.objects.filter(request=request, deleted_at=None, expires_at__gt=timezone.now()).first()
    if package is None:
        return None
    path = reverse("dsr-package-download", kwargs={"token": package_token(package=package)})
    return absolute_link(path, base=base_url or request.public_base_url)
