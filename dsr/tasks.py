"""Celery tasks: run one node, the watchdog, reminders and record purging."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="dsr.node_run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def dsr_node_run(task_id: int) -> str:
    """Run one request node (idempotent; a duplicate delivery is skipped by the claim)."""
    from dsr.execution import node_run

    return node_run(task_id=task_id)


@shared_task(name="dsr.watchdog", ignore_result=True)
def dsr_watchdog() -> int:
    """Requeue nodes of dead workers and lost messages (periodic, see CELERY_BEAT_SCHEDULE)."""
    from dsr.execution import watchdog_run

    return watchdog_run()


@shared_task(name="dsr.deadline_reminders", ignore_result=True)
def dsr_deadline_reminders_task() -> int:
    from dsr.services import dsr_deadline_reminders

    return dsr_deadline_reminders()


@shared_task(name="dsr.records_purge", ignore_result=True)
def dsr_records_purge_task() -> int:
    from dsr.services import dsr_records_purge

    return dsr_records_purge()
