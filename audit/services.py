"""Writing audit entries: reads (access), denied attempts and changes.

Actors are passed explicitly: auditlog's middleware runs before DRF authenticates a token, so it
cannot know the API user. Values are never written, only field names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from auditlog.cid import get_cid
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.chain import chain_seal
from audit.models import AuditEntry, Outcome

ACCESS = AuditEntry.Action.ACCESS
CREATE = AuditEntry.Action.CREATE
UPDATE = AuditEntry.Action.UPDATE
DELETE = AuditEntry.Action.DELETE


def _client_addr(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _actor(user) -> tuple[object | None, str]:
    if user is None or not getattr(user, "is_authenticated", False):
        return None, ""
    return user, getattr(user, "email", "") or getattr(user, "username", "")


def _entry(
    *, actor, obj: models.Model, action: int, fields: Sequence[str], reason: str, outcome: str,
    request: HttpRequest | None, data: dict | None, content_type: ContentType | None = None,
) -> AuditEntry:
    user, actor_email = _actor(actor)
    return AuditEntry(
        content_type=content_type or ContentType.objects.get_for_model(obj, for_concrete_model=False),
        object_pk=str(obj.pk),
        object_id=obj.pk if isinstance(obj.pk, int) else None,
        object_repr=str(obj)[:200],
        action=action,
        actor=user,
        actor_email=actor_email,
        remote_addr=_client_addr(request),
        cid=get_cid(),
        timestamp=timezone.now(),
        fields=list(fields),
        reason=reason[:500],
        outcome=outcome,
        additional_data=data or None,
        changes={},
        workspace_id=getattr(obj, "workspace_id", None),
    )


def access_record(
    *, actor, obj: models.Model, fields: Sequence[str] = (), reason: str = "",
    outcome: str = Outcome.ALLOWED, request: HttpRequest | None = None, via: str = "",
) -> AuditEntry:
    """Log one read (or a denied attempt) of ``obj``."""
    entry = _entry(
        actor=actor, obj=obj, action=ACCESS, fields=fields, reason=reason, outcome=outcome,
        request=request, data={"via": via} if via else None,
    )
    entry.save()
    return entry


def access_record_many(
    *, actor, objs: Iterable[models.Model], fields: Sequence[str] = (), reason: str = "",
    request: HttpRequest | None = None, via: str = "",
) -> list[AuditEntry]:
    """Log one read per object (list pages, exports) with a single chain lock."""
    objs = list(objs)
    if not objs:
        return []
    content_type = ContentType.objects.get_for_model(objs[0], for_concrete_model=False)
    entries = [
        _entry(
            actor=actor, obj=obj, action=ACCESS, fields=fields, reason=reason,
            outcome=Outcome.ALLOWED, request=request, data={"via": via} if via else None,
            content_type=content_type,
        )
        for obj in objs
    ]
    with transaction.atomic():
        chain_seal(entries)
        AuditEntry.objects.bulk_create(entries, batch_size=500)
    return entries


def change_record(
    *, actor, obj: models.Model, action: int, fields: Sequence[str] = (), note: str = "",
    request: HttpRequest | None = None, data: dict | None = None,
) -> AuditEntry:
    """Log a create/update/delete of ``obj`` by field name (values of personal data never)."""
    entry = _entry(
        actor=actor, obj=obj, action=action, fields=fields, reason=note, outcome=Outcome.ALLOWED,
        request=request, data=data,
    )
    entry.changes = {name: ["***", "***"] for name in fields}
    entry.save()
    return entry
