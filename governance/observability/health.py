"""Liveness (``/healthz``) and readiness (``/readyz``) probes for load balancers and orchestrators.

- ``/healthz``: the process is up and answering. No I/O at all, so a slow database never makes an
  orchestrator kill healthy web processes (that would turn a database hiccup into an outage).
- ``/readyz``: this process can serve: the main database, the key store, the Celery broker and the
  cache that holds the rate limits (``CACHE_URL``: a probe key written, read back and deleted) each
  answer within ``MAMORU_READYZ_TIMEOUT_SECONDS``. 503 with the failing check named otherwise.

Both are answered by :class:`HealthProbeMiddleware` near the top of ``MIDDLEWARE``: before host
validation (probes come with the pod's or container's address as ``Host``), before the HTTPS
redirect (probes speak plain HTTP inside the network), before sessions, auth and the audit log
(a probe every few seconds must not write anything anywhere). No authentication, no personal data.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.db import BaseDatabaseCache
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

PROBE_PATHS = ("/healthz", "/readyz")

# Guard against a pile of stuck check threads when a dependency hangs: a check still running from
# an earlier probe is reported as failing instead of starting another one.
_running: dict[str, threading.Thread] = {}
_running_lock = threading.Lock()


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Never touches a database or the broker."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: default database, key store, broker and cache reachable; 503 naming what failed."""
    checks = readiness_checks()
    ok = all(check["status"] == "ok" for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


def readiness_checks() -> dict[str, dict]:
    timeout = float(settings.MAMORU_READYZ_TIMEOUT_SECONDS)
    probes: dict[str, Callable[[], None]] = {
        "database": lambda: _database_check("default"),
        "keystore": lambda: _database_check("keystore"),
        "broker": lambda: _broker_check(timeout),
        "cache": _cache_check,
    }
    results: dict[str, dict] = {}
    threads: dict[str, tuple[threading.Thread, dict]] = {}
    started = time.monotonic()
    for name, probe in probes.items():
        with _running_lock:
            previous = _running.get(name)
            if previous is not None and previous.is_alive():
                results[name] = {"status": "error", "error": "previous check still running"}
                continue
            outcome: dict = {}
            thread = threading.Thread(
                target=_run, args=(probe, outcome), name=f"readyz-{name}", daemon=True
            )
            _running[name] = thread
        thread.start()
        threads[name] = (thread, outcome)
    for name, (thread, outcome) in threads.items():
        thread.join(max(0.0, timeout - (time.monotonic() - started)))
        if thread.is_alive():
            results[name] = {"status": "error", "error": f"no answer within {timeout:g} s"}
        else:
            results[name] = outcome
    return {name: results[name] for name in probes}


def _run(probe: Callable[[], None], outcome: dict) -> None:
    started = time.monotonic()
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - reported to the prober, never raised
        outcome.update(status="error", error=exc.__class__.__name__)
    else:
        outcome.update(status="ok")
    outcome["ms"] = round((time.monotonic() - started) * 1000, 1)


def _database_check(alias: str) -> None:
    # A thread of its own has a connection of its own: closed here, so probes leave nothing open.
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


def _cache_check() -> None:
    """Write a probe key to the cache that holds the rate limits (CACHES["default"]), read it back
    and delete it: with the cache down the public endpoints answer 503 rate_limit_unavailable.
    The database cache (no CACHE_URL) is only read: a probe writes nothing to a database."""
    cache = caches.create_connection(DEFAULT_CACHE_ALIAS)  # this probe's own client, closed below
    key, value = f"mamoru:readyz:{uuid.uuid4().hex}", uuid.uuid4().hex
    try:
        if isinstance(cache, BaseDatabaseCache):
            cache.get(key)  # the table is there and answers
            return
        cache.set(key, value, timeout=30)
        if cache.get(key) != value:
            raise RuntimeError("the cache did not return what was written")
        cache.delete(key)
    finally:
        cache.close()
        connections.close_all()  # the database cache's connection in this thread


def _broker_check(timeout: float) -> None:
    from governance.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout, interval_start=0, interval_step=0)
        conn.default_channel  # noqa: B018 - opening the channel is the check (filesystem: the folders)


def _metrics(request: HttpRequest) -> HttpResponse:
    from governance.observability.metrics import metrics_view

    return metrics_view(request)


_VIEWS = {"/healthz": healthz, "/readyz": readyz, "/metrics": _metrics}


class HealthProbeMiddleware:
    """Answer ``GET``/``HEAD`` ``/healthz``, ``/readyz`` and ``/metrics`` before anything else runs
    (``/metrics`` checks its own token: Prometheus scrapes by address, like a probe)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = _VIEWS.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            response = view(request)
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)
