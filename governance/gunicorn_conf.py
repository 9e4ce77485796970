"""gunicorn's configuration for Mamoru: ``gunicorn -c python:governance.gunicorn_conf``.

``manage.py run_demo`` and the container image start the web server with it; every value can be
changed through the environment (README.md, "Configuration"; docs/operations.md, "Serving").
Command-line options given after ``-c`` override it (``run_demo --bind``).

- Workers: :class:`governance.gunicorn_worker.BufferingThreadWorker`, gunicorn's threaded worker
  reading requests in its event loop, so idle or slow clients cost no thread (issue 13, finding 2);
  ``WEB_CONCURRENCY`` processes (default: the number of CPUs) × ``GUNICORN_THREADS`` threads (8).
- Overload: ``MAMORU_OVERLOAD_MAX_INFLIGHT`` defaults to threads − 2 (at least 1), so two threads
  of every process stay free to answer health checks and 503s (governance/overload.py).
- Timeouts: ``GUNICORN_TIMEOUT`` (30 s; a worker whose event loop stops for that long is killed
  and replaced), ``GUNICORN_GRACEFUL_TIMEOUT`` (20 s to finish running requests on a restart or
  shutdown), ``GUNICORN_KEEPALIVE`` (5 s between requests on a connection; keep it above your
  load balancer's idle timeout only if the balancer reuses connections, and below it otherwise),
  ``GUNICORN_REQUEST_READ_TIMEOUT`` (10 s for a client to send its request).
- Request line: up to ``GUNICORN_LIMIT_REQUEST_LINE`` bytes (8190, gunicorn's maximum; longer: 414).
- Recycling: each worker is replaced after ``GUNICORN_MAX_REQUESTS`` requests (10,000; 0 = never),
  plus up to ``GUNICORN_MAX_REQUESTS_JITTER`` (1,000) so the workers do not restart together.
- Logs: access log on stdout (``GUNICORN_ACCESS_LOG``; ``""`` = none) through
  :class:`governance.gunicorn_logger.RedactingLogger`, which keeps identities out of it.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


wsgi_app = "governance.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "").strip() or "127.0.0.1:8000"]

worker_class = "governance.gunicorn_worker.BufferingThreadWorker"
workers = _int("WEB_CONCURRENCY", os.cpu_count() or 1)
threads = _int("GUNICORN_THREADS", 8)
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 1000)

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
os.environ.setdefault("GUNICORN_REQUEST_READ_TIMEOUT", str(_float("GUNICORN_REQUEST_READ_TIMEOUT", 10.0)))

max_requests = _int("GUNICORN_MAX_REQUESTS", 10_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1_000) if max_requests else 0

# The longest request line (method, path with query, version), in bytes: gunicorn's maximum, 8190,
# the size nginx's header buffers take too. gunicorn's default 4094 sent long API queries its own HTML
# "414 Request-URI Too Long" page (issue 13 QA) before Django could answer in problem JSON; a longer
# line still gets that page (gunicorn writes it before the application runs).
limit_request_line = _int("GUNICORN_LIMIT_REQUEST_LINE", 8190)



def post_fork(server, worker):
    """Each worker's overload limit (governance/overload.py, read through Django's settings when the
    worker loads the application) follows its final thread count, ``--threads`` included."""
    os.environ.setdefault("MAMORU_OVERLOAD_MAX_INFLIGHT", str(max(1, worker.cfg.threads - 2)))


def child_exit(server, worker):
    """Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, docs/operations.md "Metrics"):
    a replaced worker's live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which a
# second instance on the host takes over: off unless GUNICORN_CONTROL_SOCKET names a path.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"].strip()

logger_class = "governance.gunicorn_logger.RedactingLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
# Workers start from a fresh interpreter state each; governance/wsgi.py freezes what they load.
preload_app = False
