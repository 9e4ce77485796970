"""Fast recovery (issue 12, finding 8): node leases, takeover, and run_demo keeping its children up."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from dsr.execution import _claim, watchdog_run
from dsr.models import RequestTask, TaskStatus
from governance.demo.supervisor import Supervisor
from tests.dsr.conftest import load_map, subject_profile, submit_verified

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_supervisor_restarts_a_killed_child_and_leaves_the_others_running():
    lines: list[str] = []
    supervisor = Supervisor({"web": SLEEPER, "worker": SLEEPER}, log=lines.append, backoff_first=0.2)
    supervisor.start()
    try:
        web, worker = supervisor.pid("web"), supervisor.pid("worker")
        # when the worker dies with SIGKILL
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and supervisor.pid("worker") in (None, worker):
            supervisor.check()
            time.sleep(0.05)
        # then it is started again, with a log line, and the web server was never touched
        assert supervisor.pid("worker") not in (None, worker)
        assert supervisor.pid("web") == web
        assert any(line.startswith("worker exited (signal 9); restarting in") for line in lines)
        assert any(line.startswith("restarted worker") for line in lines)
        # a child that keeps crashing waits longer each time (backoff)
        assert supervisor.children["worker"].backoff == pytest.approx(0.4)
    finally:
        supervisor.stop()
    assert supervisor.pid("web") is None and supervisor.pid("worker") is None


@pytest.mark.django_db
def test_expired_lease_is_requeued_and_a_live_lease_is_not(workspaces, mailoutbox, sqlite_stores, settings):
    settings.MAMORU_DSR_LEASE_SECONDS = 30
    load_map(sqlite_stores)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    task = RequestTask.objects.filter(request=request, status=TaskStatus.QUEUED).first()
    claimed, lease = _claim(task.pk)
    assert claimed.lease_expires_at - claimed.started_at == timedelta(seconds=30)
    # a running node with a live lease is not touched, however old its start
    RequestTask.objects.filter(pk=task.pk).update(started_at=timezone.now() - timedelta(hours=1),
                                                  heartbeat_at=timezone.now() - timedelta(seconds=20))
    assert watchdog_run() == 0
    # once the lease has run out (no heartbeat), the watchdog hands it on, saying why
    RequestTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert watchdog_run() == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.QUEUED and task.lease is None
    event = request.events.get(kind="node_requeued")
    assert event.data["reason"] == "lease_expired" and event.data["how"] == "watchdog"


@pytest.mark.django_db
def test_redelivered_message_takes_over_an_expired_lease(workspaces, mailoutbox, sqlite_stores):
    load_map(sqlite_stores)
    subject_profile(workspaces[0])
    request = submit_verified(workspaces[0], mailoutbox, "erasure")
    task = RequestTask.objects.filter(request=request, status=TaskStatus.QUEUED).first()
    _first, lease = _claim(task.pk)
    assert _claim(task.pk) is None  # a duplicate delivery while the lease is live is skipped
    RequestTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    taken, new_lease = _claim(task.pk)
    assert new_lease != lease and taken.attempts == 2 and taken.status == TaskStatus.RUNNING
    event = request.events.get(kind="node_requeued")
    assert event.data["how"] == "claim" and event.data["reason"] == "lease_expired"
