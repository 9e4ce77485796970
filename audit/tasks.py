"""The audit kernel's scheduled work: verifying the evidence chains."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="audit.chains_verify")
def audit_chains_verify_task(full: bool = False) -> dict:
    """Verify every registered chain (incrementally; ``full`` from the start) and export the heads."""
    from audit.verification import chains_verify

    run = chains_verify(full=full).run
    return {"ok": run.ok, "checked": run.checked, "problems": run.problem_count}
