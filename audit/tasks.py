"""Background work for audit: building large exports, evaluating anomaly rules, purging files."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="audit.export_run", acks_late=True)
def audit_export_run_task(export_id: str) -> str:
    from audit.exporters.services import audit_export_run

    return audit_export_run(export_id=export_id).status


@shared_task(name="audit.anomalies_evaluate")
def audit_anomalies_evaluate_task() -> int:
    from audit.anomalies import anomalies_evaluate

    return len(anomalies_evaluate())


@shared_task(name="audit.exports_purge")
def audit_exports_purge_task() -> int:
    from audit.exporters.services import audit_exports_purge

    return audit_exports_purge()


@shared_task(name="audit.chains_verify")
def audit_chains_verify_task(full: bool = False) -> dict:
    """Verify every registered chain (incrementally; ``full`` from the start) and export the heads."""
    from audit.verification import chains_verify

    run = chains_verify(full=full).run
    return {"ok": run.ok, "checked": run.checked, "problems": run.problem_count}
