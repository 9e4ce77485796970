"""Running exports: start (validate, authorise, audit), stream, run in the background, download.

Every export writes audit entries in the transaction that creates it: a CREATE entry on the
:class:`~audit.models.AuditExport` (the "bulk exports" anomaly rule counts these) and, for an
export about one person, an ACCESS entry on their profile. Downloading a finished file writes an
ACCESS entry on the export.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from rest_framework import status

from audit import services as audit_services
from audit.models import AuditExport, ExportStatus
from governance.access.scopes import EXPORT, user_has_scope
from governance.api.errors import Conflict, DomainError, NotFound
from oversight.exporters import exporter_get, storage
from oversight.reports import ReportUnavailable, report_get

PROGRESS_EVERY = 5000
ERR_NOT_READY = "The export is not finished yet."
ERR_EXPIRED = "The export has expired; run it again."


class ExportNotReady(Conflict):
    code = "export_not_ready"
    title = _("The export is not finished yet.")


class ExportScopeMissing(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "token_scope"
    title = _("This token's scopes do not allow exports.")


def _require_export_scope(user) -> None:
    """An API token needs the ``export`` scope for any export, whatever its user's role allows."""
    if not user_has_scope(user, EXPORT):
        raise ExportScopeMissing("This request needs a token with the 'export' scope.")


class ExportGone(DomainError):
    status_code = status.HTTP_410_GONE
    code = "export_expired"
    title = _("The export has expired.")


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if isinstance(value, dt.datetime | dt.date):
            out[key] = value.isoformat()
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def audit_export_create(
    *, user, report: str, fmt: str, filters: Mapping[str, Any], streamed: bool,
    request: HttpRequest | None = None, locale: str | None = None,
) -> AuditExport:
    """Validate and authorise an export, freeze it to the data as of now, and audit it."""
    definition = report_get(report)
    if not definition.is_available():
        raise ReportUnavailable(
            f"Report {report!r} needs: {', '.join(definition.requires_apps)}."
        )
    _require_export_scope(user)
    exporter_get(fmt)  # unknown formats fail before anything is written
    params = definition.clean(filters)
    definition.authorize(params, user=user)
    params.update(definition.snapshot(params))
    with transaction.atomic():
        export = AuditExport.objects.create(
            report=report, format=fmt, params=_jsonable(params), streamed=streamed,
            locale=(locale or translation.get_language() or settings.LANGUAGE_CODE)[:8],
            created_by=user if getattr(user, "is_authenticated", False) else None,
            status=ExportStatus.RUNNING if streamed else ExportStatus.PENDING,
            started_at=timezone.now() if streamed else None,
        )
        audit_services.change_record(
            actor=user, obj=export, action=audit_services.CREATE, request=request,
            note=f"audit export {report}.{fmt}",
            data={"report": report, "format": fmt, "streamed": streamed,
                  "filters": sorted(k for k in params if k != "until_seq")},
        )
        subjects = definition.subject_profiles(params)
        if subjects:
            audit_services.access_record_many(
                actor=user, objs=subjects, fields=["audit_trail"], reason=f"audit export {report}",
                request=request, via="audit_export",
            )
    return export


def audit_export_enqueue(*, user, report: str, fmt: str, filters, request=None) -> AuditExport:
    """Create a background export and queue its task once the transaction commits."""
    from oversight.tasks import audit_export_run_task  # late: tasks import this module

    export = audit_export_create(
        user=user, report=report, fmt=fmt, filters=filters, streamed=False, request=request
    )
    transaction.on_commit(lambda: audit_export_run_task.delay(str(export.pk)))
    return export


def _table(export: AuditExport, user):
    definition = report_get(export.report)
    params = definition.clean(export.params)
    return definition, params, definition.table(params, user=user)


def _counted(rows, export: AuditExport, *, save_progress: bool) -> Iterator:
    done = 0
    for row in rows:
        yield row
        done += 1
        if save_progress and done % PROGRESS_EVERY == 0:
            AuditExport.objects.filter(pk=export.pk).update(rows_done=done)
    export.rows_done = done


def audit_export_stream(*, export: AuditExport, user) -> Iterator[bytes]:
    """Yield the export's bytes for a streaming response; mark it done (or failed) at the end."""
    with translation.override(export.locale):
        definition, params, table = _table(export, user)
        table.rows = _counted(table.rows, export, save_progress=False)
        exporter = exporter_get(export.format)
        try:
            yield from exporter.stream(table)
        except Exception as exc:
            AuditExport.objects.filter(pk=export.pk).update(
                status=ExportStatus.FAILED, error=str(exc)[:500], finished_at=timezone.now()
            )
            raise
        AuditExport.objects.filter(pk=export.pk).update(
            status=ExportStatus.DONE, rows_done=export.rows_done, rows_total=export.rows_done,
            finished_at=timezone.now(),
        )


def audit_export_run(*, export_id: uuid.UUID) -> AuditExport:
    """Build the export file (the background task's body). Idempotent: a finished export is kept."""
    export = AuditExport.objects.select_related("created_by").get(pk=export_id)
    if export.status == ExportStatus.DONE:
        return export
    user = export.created_by
    definition = report_get(export.report)
    exporter = exporter_get(export.format)
    with translation.override(export.locale):
        params = definition.clean(export.params)
        export.rows_total = definition.count(params, user=user)
        export.status, export.started_at, export.rows_done = ExportStatus.RUNNING, timezone.now(), 0
        if definition.personal_data and export.data_key_id is None:
            from governance.crypto.envelope import data_key_create

            export.data_key_id = data_key_create(owner=f"audit-export:{export.pk}")
        export.file_name = f"{export.pk}.{exporter.extension}" + (".enc" if export.data_key_id else "")
        export.save(update_fields=["rows_total", "status", "started_at", "rows_done", "data_key_id", "file_name"])
        try:
            table = definition.table(params, user=user)
            table.rows = _counted(table.rows, export, save_progress=True)
            size = storage.file_write(
                path=storage.exports_dir() / export.file_name, chunks=exporter.stream(table),
                export_id=export.pk, dek_id=export.data_key_id,
            )
        except Exception as exc:
            AuditExport.objects.filter(pk=export.pk).update(
                status=ExportStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:500],
                finished_at=timezone.now(),
            )
            raise
    ttl = dt.timedelta(hours=getattr(settings, "MAMORU_AUDIT_EXPORT_TTL_HOURS", 72))
    export.status, export.file_size = ExportStatus.DONE, size
    export.rows_total = export.rows_done
    export.finished_at = timezone.now()
    export.expires_at = export.finished_at + ttl
    export.save(update_fields=["status", "file_size", "rows_total", "rows_done", "finished_at", "expires_at"])
    return export


def export_visible(*, export: AuditExport, user) -> bool:
    return bool(
        user is not None and getattr(user, "is_authenticated", False)
        and (export.created_by_id == user.pk or user.has_perm("audit.view_auditexport"))
    )


def audit_export_get(*, export_id, user) -> AuditExport:
    export = AuditExport.objects.filter(pk=export_id).first()
    if export is None or not export_visible(export=export, user=user):
        raise NotFound("No such export.")
    return export


def audit_export_download(
    *, export: AuditExport, user, request: HttpRequest | None = None
) -> Iterator[bytes]:
    """Audit the download and return the file's plain bytes as an iterator."""
    _require_export_scope(user)
    if export.status != ExportStatus.DONE or export.streamed:
        raise ExportNotReady(ERR_NOT_READY)
    path = storage.exports_dir() / export.file_name
    expired = export.expires_at is not None and export.expires_at <= timezone.now()
    if expired or not export.file_name or not path.is_file():
        raise ExportGone(ERR_EXPIRED)
    audit_services.access_record(
        actor=user, obj=export, fields=["file"], reason="audit export download", request=request,
        via="audit_export_download",
    )
    return storage.file_read(path=path, export_id=export.pk, dek_id=export.data_key_id)


def audit_exports_purge(*, now: dt.datetime | None = None) -> int:
    """Delete expired export files and crypto-shred their keys; keep the rows as the record."""
    from governance.crypto.envelope import data_key_destroy

    now = now or timezone.now()
    purged = 0
    for export in AuditExport.objects.filter(expires_at__lte=now).exclude(file_name=""):
        (storage.exports_dir() / export.file_name).unlink(missing_ok=True)
        if export.data_key_id:
            data_key_destroy(dek_id=export.data_key_id)
        AuditExport.objects.filter(pk=export.pk).update(file_name="")
        purged += 1
    return purged


def download_name(export: AuditExport) -> str:
    exporter = exporter_get(export.format)
    stamp = export.created_at.strftime("%Y%m%d-%H%M%S")
    return f"mamoru-{export.report}-{stamp}.{exporter.extension}"
