"""Worker heartbeats: a Celery bootstep renews this worker's row every few seconds.

A thread of the worker's main process writes, not a task: a worker whose pool is busy with long DSR
nodes is still alive, and a scheduled task would only prove that *some* worker took it. Prometheus
alerts on ``time() - mamoru_worker_last_seen_timestamp_seconds``; rows of workers gone for a day
are deleted by the next heartbeat of any worker.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta

from celery import bootsteps
from django.conf import settings
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)
FORGET_AFTER = timedelta(days=1)

# The prefork pool forks children from this process at any time (start-up, replacements). A fork in
# the middle of a write would leave the child believing the write lock is held (SQLite's per-process
# lock table is copied), and its first write would wait until "database is locked". Forks wait for a
# beat in progress; between beats this thread holds no connection at all.
_writing = threading.Lock()
_fork_guard_installed = False


def _install_fork_guard() -> None:
    global _fork_guard_installed
    if not _fork_guard_installed:
        os.register_at_fork(before=_writing.acquire, after_in_parent=_writing.release,
                            after_in_child=_writing.release)
        _fork_guard_installed = True


def heartbeat_write(*, hostname: str, role: str, started_at) -> None:
    from governance.observability.models import WorkerHeartbeat

    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname[:200],
        defaults={"role": role, "pid": os.getpid(), "started_at": started_at, "last_seen": now},
    )
    WorkerHeartbeat.objects.filter(last_seen__lt=now - FORGET_AFTER).delete()


class HeartbeatStep(bootsteps.StartStopStep):
    """Started with the worker; writes ``WorkerHeartbeat`` every ``MAMORU_WORKER_HEARTBEAT_SECONDS``."""

    label = "mamoru heartbeat"

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker) -> None:
        hostname, started_at = worker.hostname, timezone.now()
        interval = float(settings.MAMORU_WORKER_HEARTBEAT_SECONDS)

        def run() -> None:
            while not self._stop.is_set():
                with _writing:
                    try:
                        heartbeat_write(hostname=hostname, role="worker", started_at=started_at)
                    except Exception:  # noqa: BLE001 - a missed beat shows as an old timestamp
                        logger.warning("worker heartbeat not written", exc_info=True)
                    finally:
                        connection.close()
                self._stop.wait(interval)

        _install_fork_guard()

        self._thread = threading.Thread(target=run, name="mamoru-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, worker) -> None:
        self._stop.set()

    def shutdown(self, worker) -> None:
        self._stop.set()
