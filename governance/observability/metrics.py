"""Prometheus metrics at ``/metrics``.

Two kinds:

- **Per-process counters** (HTTP requests by method, view and status; latency histogram by view),
  kept by :class:`MetricsMiddleware` with ``prometheus_client``. Under gunicorn with several workers
  set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, wiped when the server starts): every worker
  writes its values there and any worker's scrape adds them up.
- **Service state read from the database at scrape time** (DSR queue depth, node failures, consent
  journal position, last chain verification, worker heartbeats): the same answer from every replica,
  whatever process wrote it. Apps contribute these as :class:`BaseMetricSource` classes in a
  ``metrics`` module of their own (``dsr/metrics.py``, ``audit/metrics.py``, …), registered in
  :data:`metric_sources`; a failing source is reported in ``mamoru_metrics_source_up`` and never
  breaks the scrape.

Labels never hold a raw path or a query: a request is labelled by its URL pattern's view name
(``admin:subjects_profile_change``, ``consent-check``) or pattern (``api/v1/profiles/<uuid:pk>``),
``<unmatched>`` when nothing matched.

``/metrics`` answers a ``Authorization: Bearer $MAMORU_METRICS_TOKEN`` when that token is set, and
only loopback clients when it is not: a request a proxy forwarded (``X-Forwarded-For``,
``Forwarded``, ``X-Real-IP``) counts as loopback only when the forwarded client is too, so a proxy
on the same host does not open ``/metrics`` to the world. ``check --deploy`` warns
(``observability.W001``) when ``MAMORU_DEPLOYMENT=production`` runs without the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from governance.registry import Registry

HTTP_REQUESTS = Counter(
    "mamoru_http_requests", "HTTP requests answered, by method, view (URL pattern) and status.",
    ["method", "view", "status"],
)
HTTP_LATENCY = Histogram(
    "mamoru_http_request_duration_seconds", "Time to answer an HTTP request, by method and view.",
    ["method", "view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


def view_label(request: HttpRequest) -> str:
    """The URL pattern that served the request (never its path): bounded, no personal data."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # answered by a middleware above URL resolution (consent check, probes)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
        except Exception:  # noqa: BLE001 - a path the resolver chokes on is still just unmatched
            return UNMATCHED
    return match.view_name or match.route or UNMATCHED


class MetricsMiddleware:
    """Count every request and time it (place it above anything that answers requests itself)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        view = view_label(request)
        HTTP_LATENCY.labels(method, view).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(method, view, str(response.status_code)).inc()
        return response


# --- service state from the database --------------------------------------------------------------


class BaseMetricSource:
    """Metrics read at scrape time. Subclasses set ``identifier`` and implement :meth:`collect`."""

    identifier = ""

    def collect(self) -> Iterable[Metric]:
        raise NotImplementedError(f"{type(self).__name__} must implement collect()")


def _autoload() -> None:
    for config in apps.get_app_configs():
        name = f"{config.name}.metrics"
        if config.name.startswith("django.") or find_spec(config.name) is None:
            continue
        if find_spec(name) is not None:
            import_module(name)


metric_sources: Registry[BaseMetricSource] = Registry("metric source", base=BaseMetricSource, instantiate=True)
_loaded = False


@metric_sources.register
class WorkerHeartbeats(BaseMetricSource):
    identifier = "workers"

    def collect(self) -> Iterable:
        from governance.observability.models import WorkerHeartbeat

        last_seen = GaugeMetricFamily(
            "mamoru_worker_last_seen_timestamp_seconds",
            "When each Celery worker (or scheduler) last wrote its heartbeat (Unix time).",
            labels=["worker", "role"],
        )
        alive = GaugeMetricFamily(
            "mamoru_workers_alive",
            "Workers whose heartbeat is younger than 3 heartbeat intervals.", labels=["role"],
        )
        cutoff = timezone.now().timestamp() - 3 * float(settings.MAMORU_WORKER_HEARTBEAT_SECONDS)
        counts: dict[str, int] = {"worker": 0, "scheduler": 0}
        for row in WorkerHeartbeat.objects.order_by("hostname"):
            seen = row.last_seen.timestamp()
            last_seen.add_metric([row.hostname, row.role], seen)
            if seen >= cutoff:
                counts[row.role] = counts.get(row.role, 0) + 1
        for role, count in sorted(counts.items()):
            alive.add_metric([role], count)
        return [last_seen, alive]


class _SourcesCollector:
    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "mamoru_metrics_source_up", "1 when a database-backed metric source answered this scrape.",
            labels=["source"],
        )
        global _loaded
        if not _loaded:
            _autoload()  # each installed app's ``metrics`` module registers its sources
            _loaded = True
        for name, source in metric_sources.items():
            try:
                families = list(source.collect())
            except Exception:  # noqa: BLE001 - one broken source must not hide the others
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def scrape() -> bytes:
    """The exposition text: this process's (or all workers') counters, then the database state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        process_part = generate_latest(registry)
    else:
        process_part = generate_latest(REGISTRY)
    state = CollectorRegistry(auto_describe=False)
    state.register(_SourcesCollector())
    return process_part + generate_latest(state)


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _forwarded_hop(value: str) -> str:
    """One forwarded address without port, brackets or zone (``[::1]:443``, ``127.0.0.1:80``)."""
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:
        value = value[1:value.index("]")]
    elif value.count(":") == 1 and "." in value:
        value = value.split(":", 1)[0]
    return value.split("%", 1)[0]


def loopback_client(request: HttpRequest) -> bool:
    """Whether the client is on this host. The connection's own address must be loopback, and a
    request that came through a proxy (``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP``: a
    same-host proxy connects from loopback too) only when every address it forwards is loopback
    as well: the client a trusted proxy names (the address the audit log and the rate limits use,
    ``audit.history.client_address``) and every hop before it. Absent or unparseable: not local."""
    if not _loopback(request.META.get("REMOTE_ADDR")):
        return False
    hops = [hop for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    hops += [hop for hop in request.headers.get("X-Real-IP", "").split(",") if hop.strip()]
    for element in request.headers.get("Forwarded", "").replace(",", ";").split(";"):
        name, sep, value = element.partition("=")
        if sep and name.strip().lower() == "for":
            hops.append(value)
    if "Forwarded" in request.headers and not hops:
        return False  # forwarded, client unknown ("for=" left out or "unknown")
    return all(_loopback(_forwarded_hop(hop)) for hop in hops)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: bearer token when ``MAMORU_METRICS_TOKEN`` is set, else loopback only."""
    token = settings.MAMORU_METRICS_TOKEN
    if token:
        scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
        allowed = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    else:
        allowed = loopback_client(request)
    if not allowed:
        response = JsonResponse(
            {"type": "about:blank", "title": "Metrics need a token.", "code": "metrics_forbidden",
             "detail": "Send Authorization: Bearer <MAMORU_METRICS_TOKEN> (unset: loopback clients only)."},
            status=403 if not token else 401, content_type="application/problem+json",
        )
        if token:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)


@checks.register(checks.Tags.security, deploy=True)
def check_metrics_token(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """observability.W001: production without ``MAMORU_METRICS_TOKEN`` relies on loopback alone."""
    if getattr(settings, "PRODUCTION", False) and not settings.MAMORU_METRICS_TOKEN:
        return [checks.Warning(
            "MAMORU_METRICS_TOKEN is not set: /metrics answers every client that reaches the web "
            "server from this host (loopback), whatever sits in front of it.",
            hint="Set MAMORU_METRICS_TOKEN and give Prometheus the token "
                 "(authorization: credentials in its scrape config).",
            id="observability.W001",
        )]
    return []
