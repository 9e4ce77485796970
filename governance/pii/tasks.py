"""Celery tasks: store discovery runs (everything they need is in the StoreScan row)."""

from __future__ import annotations

from celery import shared_task

from governance.pii.models import StoreScan, StoreScanStatus


@shared_task(name="pii.store_scan_run", acks_late=True)
def store_scan_run(scan_id: str) -> str:
    """Run a queued discovery; a finished one is not run again when redelivered."""
    from governance.pii.services import store_scan_execute

    status = StoreScan.objects.filter(pk=scan_id).values_list("status", flat=True).first()
    if status is None or status == StoreScanStatus.DONE:
        return status or "missing"
    try:
        store_scan_execute(scan_id=scan_id)
    except Exception:  # noqa: BLE001 - recorded on the row as FAILED with the error
        return StoreScanStatus.FAILED
    return StoreScanStatus.DONE


@shared_task(name="pii.ingest_job_run", acks_late=True)
def ingest_job_run(job_id: str) -> str:
    """Run a queued ingest job (``governance.pii.services.ingest_job_execute``)."""
    from governance.pii.services import ingest_job_execute

    job = ingest_job_execute(job_id=job_id)
    return job.status if job is not None else "skipped"
