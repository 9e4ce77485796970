"""Serve the demo: web server, Celery worker (with beat) and the demo's helper services."""

from __future__ import annotations

import os
import signal
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from governance.demo.supervisor import Supervisor


def web_argv(*, python: str, bind: str, workers: int | None = None, threads: int | None = None,
             access_log: str | None = None) -> list[str]:
    """The web server's command line: gunicorn with ``governance/gunicorn_conf.py`` (threaded
    workers that idle or slow clients cannot starve, timeouts, recycling, an access log that never
    holds identities); ``workers``/``threads`` override ``WEB_CONCURRENCY``/``GUNICORN_THREADS``."""
    argv = [python, "-m", "gunicorn", "-c", "python:governance.gunicorn_conf", "--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    if threads:
        argv += ["--threads", str(threads)]
    if access_log is not None:
        argv += ["--access-logfile", access_log]
    return argv


class Command(BaseCommand):
    help = (
        "Run Mamoru for a demo or a single machine: gunicorn on --bind (default 127.0.0.1:8000), "
        "a Celery worker with an embedded beat scheduler on the configured broker (the filesystem "
        "broker by default: no server needed), and the extra processes in MAMORU_DEMO_PROCESSES. "
        "A child that crashes is restarted (with backoff); Ctrl-C stops them all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=None,
                            help="gunicorn processes (default: WEB_CONCURRENCY, else the number of CPUs)")
        parser.add_argument("--web-threads", type=int, default=None,
                            help="threads per gunicorn process (default: GUNICORN_THREADS, else 8)")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")

    def handle(self, *args, bind: str, web_workers: int | None, web_threads: int | None,
               concurrency: int, **options):
        python = sys.executable
        commands = {
            "web": web_argv(python=python, bind=bind, workers=web_workers, threads=web_threads),
            "worker": [
                python, "-m", "celery", "-A", "governance", "worker", "--beat", "-l", "INFO",
                "-c", str(concurrency), "-s", str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
        }
        for name, argv in getattr(settings, "MAMORU_DEMO_PROCESSES", {}).items():
            commands[name] = [python if part == "{python}" else part for part in argv]
        # A child that exits is restarted with backoff; the others keep running (supervisor.py).
        supervisor = Supervisor(commands, env=os.environ.copy(), log=lambda line: self.stderr.write(line))
        supervisor.start()
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
                supervisor.check()
                time.sleep(0.5)
        finally:
            supervisor.stop()
            self.stdout.write("stopped.")
