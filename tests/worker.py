"""A real Celery worker process for integration tests (``live_worker`` fixture)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connections

from tests.servers import database_url

ROOT = Path(__file__).resolve().parent.parent


class LiveWorker:
    """Start, kill (any signal) and restart a worker that uses the test databases and broker."""

    def __init__(self, *, concurrency: int = 1, queues: str | None = None, log_dir: Path | None = None):
        self.concurrency = concurrency
        self.queues = queues
        self.log_dir = log_dir or (Path(settings.VAR_DIR) / "test-workers")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def env(self) -> dict[str, str]:
        env = os.environ.copy()
        env["DATABASE_URL"] = database_url(connections["default"].settings_dict)
        env["MAMORU_KEYSTORE_URL"] = database_url(connections["keystore"].settings_dict)
        env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
        env["MAMORU_VAR_DIR"] = str(settings.VAR_DIR)
        env["DJANGO_SETTINGS_MODULE"] = "governance.settings"
        env["MAMORU_DEK_CACHE_SECONDS"] = "0"
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start(self, timeout: float = 90) -> LiveWorker:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.log_path = self.log_dir / f"{name.split('@')[0]}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "governance", "worker", "-l", "INFO", "-n", name,
            "-c", str(self.concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        if self.queues:
            cmd += ["-Q", self.queues]
        log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-4000:]}")
            if "ready." in self.log_path.read_text():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole worker (main process and pool children), as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def restart(self) -> LiveWorker:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""


def broker_purge() -> None:
    """Drop messages left in the broker by earlier runs."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        from governance.celery import app

        app.control.purge()
