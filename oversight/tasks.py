"""Background work for oversight: building large exports, evaluating anomaly rules, purging files."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="audit.export_run", acks_late=True)
def audit_export_run_task(export_id: str) -> str:
    from oversight.exporters.services import audit_export_run

    return audit_export_run(export_id=export_id).status


@shared_task(name="audit.anomalies_evaluate")
def audit_anomalies_evaluate_task() -> int:
    from oversight.anomalies import anomalies_evaluate

    return len(anomalies_evaluate())


@shared_task(name="audit.exports_purge")
def audit_exports_purge_task() -> int:
    from oversight.exporters.services import audit_exports_purge

    return audit_exports_purge()
