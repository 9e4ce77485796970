"""Serve the demo: web server, Celery worker (with beat) and the demo's helper services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def web_argv(*, python: str, bind: str, workers: int, access_log: str = "-") -> list[str]:
    """The web server's command line: gunicorn with an access log that never holds identities."""
    return [
        python, "-m", "gunicorn", "governance.wsgi:application", "--bind", bind,
        "--workers", str(workers), "--access-logfile", access_log, "--graceful-timeout", "5",
        # identity values in query strings are redacted in the access log (governance/logredact.py)
        "--logger-class", "governance.gunicorn_logger.RedactingLogger",
    ]


class Command(BaseCommand):
    help = (
        "Run Mamoru for a demo or a single machine: gunicorn on --bind (default 127.0.0.1:8000), "
        "a Celery worker with an embedded beat scheduler on the configured broker (the filesystem "
        "broker by default: no server needed), and the extra processes in MAMORU_DEMO_PROCESSES. "
        "Ctrl-C stops them all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")

    def handle(self, *args, bind: str, web_workers: int, concurrency: int, **options):
        python = sys.executable
        commands = {
            "web": web_argv(python=python, bind=bind, workers=web_workers),
            "worker": [
                python, "-m", "celery", "-A", "governance", "worker", "--beat", "-l", "INFO",
                "-c", str(concurrency), "-s", str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
        }
        for name, argv in getattr(settings, "MAMORU_DEMO_PROCESSES", {}).items():
            commands[name] = [python if part == "{python}" else part for part in argv]
        procs: dict[str, subprocess.Popen] = {}
        env = os.environ.copy()
        for name, argv in commands.items():
            procs[name] = subprocess.Popen(argv, env=env, start_new_session=True)
            self.stdout.write(f"started {name} (pid {procs[name].pid})")
        host = bind if not bind.startswith("0.0.0.0") else bind.replace("0.0.0.0", "127.0.0.1")
        self.stdout.write(self.style.SUCCESS(f"\nMamoru is running: http://{host}/admin/  (API docs: http://{host}/api/docs/)"))
        self.stdout.write(f"Demo logins: {settings.VAR_DIR / 'demo_credentials.json'} — Ctrl-C to stop.\n")

        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with status {proc.returncode}; stopping the rest")
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # warm shutdown: each stops its own children
            deadline = time.monotonic() + 15
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            self.stdout.write("stopped.")
