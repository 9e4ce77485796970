"""Writes: ingesting profiles (scan, flag, store findings, upsert), alerts, store discovery."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.freetext import freetext_mask
from audit.services import CREATE, UPDATE, change_record
from governance.api.errors import DomainError
from governance.crypto import envelope
from governance.pii.models import (
    AlertStatus,
    Channel,
    ColumnSuggestion,
    IngestJob,
    IngestJobStatus,
    PiiAlert,
    ScanFinding,
    StoreScan,
    StoreScanStatus,
    SuggestionStatus,
)
from governance.pii.policy import finding_expected, ingest_policy
from governance.pii.scanner import Finding, scanner_get
from governance.subjects.identities import InvalidIdentity, normalize_identity
from governance.subjects.models import Workspace
from governance.subjects.services import IdentityInput, profile_upsert

IDENTITY_FIELDS = ("email", "phone", "customer_id")
ATTRIBUTE_FIELDS = ("full_name", "kana_name", "address", "postal_code", "birth_date")
ERR_UNEXPECTED = "The batch holds personal data where the policy expects none; nothing was stored."
ERR_ALREADY_DECIDED = "This suggestion was already decided."


class UnexpectedPii(DomainError):
    status_code = 422
    code = "unexpected_pii"
    title = _("Unexpected personal data.")


class IngestInvalid(DomainError):
    code = "ingest_invalid"
    title = _("A profile in the batch is not valid.")


class SuggestionDecided(DomainError):
    status_code = 409
    code = "suggestion_decided"
    title = _("Already decided.")


@dataclass
class IngestResult:
    profiles: list[dict[str, Any]] = field(default_factory=list)
    findings: list[list[dict[str, Any]]] = field(default_factory=list)
    unexpected: int = 0
    alerts: list[int] = field(default_factory=list)


def _scan_record(item: dict[str, Any]) -> dict[str, Any]:
    record = {name: item[name] for name in IDENTITY_FIELDS + ATTRIBUTE_FIELDS if item.get(name)}
    if item.get("extra"):
        record["extra"] = item["extra"]
    return record


def _identities(item: dict[str, Any], index: int, jurisdiction: str) -> list[IdentityInput]:
    identities = []
    for kind in IDENTITY_FIELDS:
        value = item.get(kind)
        if not value:
            continue
        namespace = item.get("customer_namespace", "") if kind == "customer_id" else ""
        try:
            normalize_identity(kind=kind, value=value, namespace=namespace, jurisdiction=jurisdiction)
        except InvalidIdentity as exc:
            raise IngestInvalid(
                f"profiles[{index}].{kind}: {exc.detail}", code="invalid_identity",
                extra={"index": index, "field": kind},
            ) from None
        identities.append(IdentityInput(kind=kind, value=value, namespace=namespace))
    if not identities:
        raise IngestInvalid(
            f"profiles[{index}]: give at least one of {', '.join(IDENTITY_FIELDS)}",
            code="identity_required", extra={"index": index},
        )
    return identities


def _alert_for(
    *, cache: dict, workspace: Workspace | None, source: str, field_path: str, entity_type: str, actor
) -> PiiAlert:
    key = (source, field_path, entity_type)
    if key in cache:
        return cache[key]
    alert = (
        PiiAlert.objects.select_for_update()
        .filter(workspace=workspace, source=source, field_path=field_path, entity_type=entity_type,
                status=AlertStatus.OPEN)
        .first()
    )
    if alert is None:
        alert = PiiAlert.objects.create(
            workspace=workspace, source=source, field_path=field_path, entity_type=entity_type
        )
        change_record(actor=actor, obj=alert, action=CREATE, fields=["entity_type", "field_path"],
                      note=f"unexpected PII from {source}")
    cache[key] = alert
    return alert


def findings_store(
    *, findings: Sequence[Sequence[Finding]], channel: str, source: str,
    workspace: Workspace | None = None, profiles: Sequence[Any] | None = None,
    policy: dict[str, set[str]] | None = None, actor=None,
) -> list[ScanFinding]:
    """Store findings (no values), flag the unexpected ones and open or grow alerts.

    Call inside the use case's transaction. ``policy=None`` stores everything as expected.
    """
    now = timezone.now()
    rows: list[ScanFinding] = []
    alerts: dict = {}
    for index, record_findings in enumerate(findings):
        profile = profiles[index] if profiles else None
        for finding in record_findings:
            field_path = finding.field_path[:255]
            expected = policy is None or finding_expected(
                policy=policy, field_path=field_path, entity_type=finding.entity_type
            )
            row = ScanFinding(
                created_at=now, channel=channel, source=source[:100], workspace=workspace,
                profile=profile, entity_type=finding.entity_type, field_path=field_path,
                score=finding.score, recognizer=finding.recognizer[:64], start=finding.start,
                end=finding.end, record_index=index, expected=expected,
            )
            if not expected:
                alert = _alert_for(cache=alerts, workspace=workspace, source=source[:100],
                                   field_path=field_path, entity_type=finding.entity_type, actor=actor)
                alert.finding_count += 1
                alert.last_seen_at = now
                row.alert = alert
            rows.append(row)
    for alert in alerts.values():
        alert.save(update_fields=["finding_count", "last_seen_at"])
    return ScanFinding.objects.bulk_create(rows, batch_size=500)


def ingest_profiles(
    *, workspace: Workspace, source: str, items: Sequence[dict[str, Any]], actor=None,
    language: str = "auto", on_unexpected: str = "flag",
) -> IngestResult:
    """Scan a batch of incoming profiles, flag unexpected PII, store findings, upsert profiles.

    Sensitive attributes are written to the profile's encrypted fields; ``extra`` is scanned
    but not stored. With ``on_unexpected="reject"`` a batch with unexpected PII stores nothing.
    """
    scanner = scanner_get()
    policy = ingest_policy()
    records = [_scan_record(item) for item in items]
    findings = scanner.scan_records(records, language=language)
    result = IngestResult()
    unexpected = [
        {"index": index, **f.as_dict()}
        for index, record_findings in enumerate(findings)
        for f in record_findings
        if not finding_expected(policy=policy, field_path=f.field_path, entity_type=f.entity_type)
    ]
    result.unexpected = len(unexpected)
    if unexpected and on_unexpected == "reject":
        raise UnexpectedPii(ERR_UNEXPECTED, extra={"unexpected": unexpected})
    prepared = []
    for index, item in enumerate(items):
        jurisdiction = item.get("jurisdiction") or workspace.default_jurisdiction
        prepared.append((item, _identities(item, index, jurisdiction)))
    with transaction.atomic():
        profiles = []
        for index, (item, identities) in enumerate(prepared):
            attributes = {name: item[name] for name in ATTRIBUTE_FIELDS if item.get(name)}
            upsert = profile_upsert(
                workspace=workspace, identities=identities, attributes=attributes,
                jurisdiction=item.get("jurisdiction") or None, locale=item.get("locale") or None,
                actor=actor, source=f"ingest:{source}",
            )
            profiles.append(upsert.profile)
            result.profiles.append(
                {"index": index, "profile_id": str(upsert.profile.pk), "created": upsert.created,
                 "merged_profile_ids": [str(pk) for pk in upsert.merged_profile_ids]}
            )
        rows = findings_store(
            findings=findings, channel=Channel.INGEST, source=source, workspace=workspace,
            profiles=profiles, policy=policy, actor=actor,
        )
        result.alerts = sorted({row.alert_id for row in rows if row.alert_id})
    result.findings = [[f.as_dict() for f in record_findings] for record_findings in findings]
    return result


def alert_acknowledge(*, alert: PiiAlert, actor, note: str = "") -> PiiAlert:
    """Mark an alert as seen by the DPO (audited). Later findings open a new alert."""
    with transaction.atomic():
        alert = PiiAlert.objects.select_for_update().get(pk=alert.pk)
        if alert.status == AlertStatus.ACKNOWLEDGED:
            return alert
        alert.status = AlertStatus.ACKNOWLEDGED
        alert.acknowledged_by = actor
        alert.acknowledged_at = timezone.now()
        if note:
            alert.note = freetext_mask(note)  # full text: sealed in the audit entry
        alert.save()
        change_record(actor=actor, obj=alert, action=UPDATE,
                      fields=["status", "acknowledged_by"] + (["note"] if note else []),
                      note=f"alert acknowledged: {note}" if note else "alert acknowledged")
    return alert


def store_scan_submit(*, scan: StoreScan, actor=None, enqueue: bool = True) -> StoreScan:
    """Save a new discovery run (URL encrypted) and queue it on Celery after commit."""
    with transaction.atomic():
        if not scan.data_key_id:
            scan.data_key_id = envelope.data_key_create(owner="pii.storescan")
        scan.requested_by = actor if getattr(actor, "is_authenticated", False) else None
        scan.status = StoreScanStatus.QUEUED
        scan.save()
        change_record(actor=actor, obj=scan, action=CREATE, fields=["name", "url", "sample_size"],
                      note="store scan requested")
        if enqueue:
            from governance.pii.tasks import store_scan_run

            scan_id = str(scan.pk)
            transaction.on_commit(lambda: store_scan_run.delay(scan_id))
    return scan


def store_scan_create(*, name: str, url: str, sample_size: int = 200, store_key: str = "",
                      actor=None, enqueue: bool = True) -> StoreScan:
    """Record a discovery run over a SQL database given its SQLAlchemy URL."""
    scan = StoreScan(name=name, sample_size=sample_size, store_key=store_key)
    scan.url = url
    return store_scan_submit(scan=scan, actor=actor, enqueue=enqueue)


def store_scan_execute(*, scan_id, progress=None) -> StoreScan:
    """Run a discovery: sample every table, store suggestions, keep progress in the row.

    Safe to run again (a redelivered task): suggestions are upserted per column and a
    decided suggestion is left as the DPO decided it.
    """
    from governance.pii.discovery import store_discover

    scan = StoreScan.objects.get(pk=scan_id)
    StoreScan.objects.filter(pk=scan.pk).update(
        status=StoreScanStatus.RUNNING, started_at=timezone.now(), error="", tables_done=0
    )

    def on_table(done: int, total: int, table: str, guesses) -> None:
        with transaction.atomic():
            for guess in guesses:
                suggestion, created = ColumnSuggestion.objects.get_or_create(
                    scan=scan, collection=guess.collection, column=guess.column,
                    defaults={
                        "entity_type": guess.entity_type, "data_category": guess.data_category,
                        "confidence": guess.confidence, "sampled": guess.sampled,
                        "matched": guess.matched,
                    },
                )
                if not created and suggestion.status == SuggestionStatus.PENDING:
                    for name in ("entity_type", "data_category", "confidence", "sampled", "matched"):
                        setattr(suggestion, name, getattr(guess, name))
                    suggestion.save()
            StoreScan.objects.filter(pk=scan.pk).update(tables_done=done, tables_total=total)
        if progress:
            progress(done, total, table, guesses)

    try:
        store_discover(url=scan.url, sample_size=scan.sample_size, scanner=scanner_get(),
                       on_table=on_table)
    except Exception as exc:
        StoreScan.objects.filter(pk=scan.pk).update(
            status=StoreScanStatus.FAILED, finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:500] if str(exc) else ''}",
        )
        raise
    StoreScan.objects.filter(pk=scan.pk).update(
        status=StoreScanStatus.DONE, finished_at=timezone.now()
    )
    scan.refresh_from_db()
    return scan


def _datamap_field_update(suggestion: ColumnSuggestion, actor) -> bool:
    """Set the data category on the data map's field, when the data map knows the column."""
    from django.apps import apps

    if not suggestion.scan.store_key or not apps.is_installed("governance.datamap"):
        return False
    field_model = apps.get_model("datamap", "Field")
    field = (
        field_model.objects.filter(
            collection__store__key=suggestion.scan.store_key,
            collection__name=suggestion.collection, name=suggestion.column,
        ).first()
    )
    if field is None:
        return False
    field.category = suggestion.data_category
    field.save(update_fields=["category"])
    change_record(actor=actor, obj=field, action=UPDATE, fields=["category"],
                  note="category accepted from PII discovery")
    return True


def suggestion_decide(*, suggestion: ColumnSuggestion, accept: bool, actor) -> ColumnSuggestion:
    """Accept or reject a suggested data category (audited)."""
    with transaction.atomic():
        suggestion = ColumnSuggestion.objects.select_for_update().get(pk=suggestion.pk)
        if suggestion.status != SuggestionStatus.PENDING:
            raise SuggestionDecided(ERR_ALREADY_DECIDED)
        suggestion.status = SuggestionStatus.ACCEPTED if accept else SuggestionStatus.REJECTED
        suggestion.decided_by = actor
        suggestion.decided_at = timezone.now()
        suggestion.save()
        change_record(actor=actor, obj=suggestion, action=UPDATE, fields=["status"],
                      note="suggestion accepted" if accept else "suggestion rejected")
        if accept:
            _datamap_field_update(suggestion, actor)
    return suggestion


__all__ = [
    "alert_acknowledge", "findings_store", "ingest_profiles", "store_scan_create",
    "store_scan_execute", "store_scan_submit", "suggestion_decide",
]


# --- large batches: a job a worker runs -------------------------------------------------------

logger = logging.getLogger(__name__)
INGEST_JOB_CHUNK = 100  # profiles per transaction in a job (one bad row re-runs its chunk row by row)


def ingest_job_create(
    *, workspace: Workspace, source: str, items: Sequence[dict[str, Any]], actor=None,
    language: str = "auto", on_unexpected: str = "flag",
) -> IngestJob:
    """Queue a batch for a worker (``ingest_job_run``); the batch waits sealed under the job's key."""
    from governance.pii.tasks import ingest_job_run

    with transaction.atomic():
        job = IngestJob(
            workspace=workspace, created_by=actor if getattr(actor, "pk", None) else None,
            source=source, language=language, on_unexpected=on_unexpected, total=len(items),
            data_key_id=envelope.data_key_create(owner="pii.ingest_job"),
        )
        job.payload = json.dumps(list(items), ensure_ascii=False, default=str)
        job.save()
        change_record(actor=actor, obj=job, action=CREATE, fields=["status", "total"],
                      note=f"{len(items)} profiles queued for ingest from {source}")
        job_id = str(job.pk)
        transaction.on_commit(lambda: ingest_job_run.delay(job_id))
    return job


def _job_collect(outcome: dict, result: IngestResult, offset: int) -> None:
    for row in result.profiles:
        outcome["profiles"].append({**row, "index": row["index"] + offset})
        outcome["created" if row["created"] else "updated"] += 1
        outcome["merged"] += len(row["merged_profile_ids"])
    outcome["unexpected"] += result.unexpected
    outcome["alerts"] = sorted(set(outcome["alerts"]) | set(result.alerts))


def _job_row_error(index: int, exc: Exception) -> dict:
    # The code and the field, never the message: messages may quote the submitted value.
    extra = getattr(exc, "extra", None) or {}
    error = {"index": index, "code": getattr(exc, "code", "invalid")}
    if isinstance(extra.get("field"), str):
        error["field"] = extra["field"]
    return error


def ingest_job_execute(*, job_id: str) -> IngestJob | None:
    """Run a queued job once (a redelivered message finds it taken); record progress per chunk."""
    claimed = IngestJob.objects.filter(pk=job_id, status=IngestJobStatus.QUEUED).update(
        status=IngestJobStatus.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    job = IngestJob.objects.select_related("workspace", "created_by").get(pk=job_id)
    outcome: dict[str, Any] = {"created": 0, "updated": 0, "merged": 0, "unexpected": 0, "alerts": [],
                               "errors": [], "profiles": []}
    status = IngestJobStatus.DONE
    try:
        items = json.loads(str(job.payload))
        chunk = len(items) if job.on_unexpected == "reject" else INGEST_JOB_CHUNK  # reject: all or nothing
        options = {"workspace": job.workspace, "source": job.source, "actor": job.created_by,
                   "language": job.language, "on_unexpected": job.on_unexpected}
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            try:
                _job_collect(outcome, ingest_profiles(items=part, **options), start)
            except UnexpectedPii as exc:
                outcome["errors"] = [
                    {"index": u["index"] + start, "code": "unexpected_pii", "entity_type": u.get("entity_type"),
                     "field_path": u.get("field_path")} for u in (exc.extra or {}).get("unexpected", [])
                ]
                status = IngestJobStatus.FAILED
                break
            except DomainError:
                for offset, item in enumerate(part):
                    try:
                        _job_collect(outcome, ingest_profiles(items=[item], **options), start + offset)
                    except DomainError as exc:
                        outcome["errors"].append(_job_row_error(start + offset, exc))
            IngestJob.objects.filter(pk=job.pk).update(processed=min(start + chunk, len(items)))
    except Exception:
        logger.exception("ingest job %s failed", job.pk)
        outcome["errors"].append({"index": None, "code": "internal_error"})
        status = IngestJobStatus.FAILED
    with transaction.atomic():
        job.refresh_from_db(fields=["processed"])
        job.status = status
        job.result = outcome
        job.payload = None  # the submitted values are gone with the job's key
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "result", "payload", "finished_at"])
        change_record(actor=job.created_by, obj=job, action=UPDATE, fields=["status"],
                      note=f"ingest job {status}: {outcome['created']} created, {outcome['updated']} updated, "
                           f"{len(outcome['errors'])} errors")
    envelope.data_key_destroy(dek_id=job.data_key_id)
    return job
