"""Graceful overload: answer 503 with ``Retry-After`` at once instead of queueing until collapse.

:class:`OverloadMiddleware` (outermost but one in ``MIDDLEWARE``) sheds a request, before any
other work, when

- the process already runs ``MAMORU_OVERLOAD_MAX_INFLIGHT`` requests (0: no limit). Set it below
  gunicorn's thread count (``governance/gunicorn_conf.py`` does: threads − 2): the spare threads
  keep answering — health checks, and 503s in a fraction of a millisecond — so the queue of
  requests waiting for a thread drains instead of growing;
- or the request waited longer than ``MAMORU_OVERLOAD_MAX_WAIT`` seconds (0: no limit) for a
  thread after it was read (known under ``governance.gunicorn_worker.BufferingThreadWorker``):
  its client has been kept waiting already; better a quick "retry" than a slower answer.

A shed request gets a problem JSON (``code`` ``overloaded``, status 503) and ``Retry-After:
MAMORU_OVERLOAD_RETRY_AFTER`` (seconds). Paths in ``MAMORU_OVERLOAD_EXEMPT_PATHS`` (health,
readiness, metrics) are never shed nor counted: a load balancer must see a saturated instance as
alive. Per-client limits (429) are the rate limits' business, not this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext as _

_local = threading.local()


def set_dispatched_at(when: float | None) -> None:
    """Called by the web server's thread with the ``time.monotonic()`` at which the request it is
    about to run was handed to the thread pool (None: unknown)."""
    _local.dispatched_at = when


def queue_wait() -> float:
    """Seconds the current request waited for a thread (0 when the server does not say)."""
    when = getattr(_local, "dispatched_at", None)
    return max(0.0, time.monotonic() - when) if when is not None else 0.0


class OverloadMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.max_inflight = int(settings.MAMORU_OVERLOAD_MAX_INFLIGHT)
        self.max_wait = float(settings.MAMORU_OVERLOAD_MAX_WAIT)
        self.retry_after = str(int(settings.MAMORU_OVERLOAD_RETRY_AFTER))
        self.exempt = frozenset(settings.MAMORU_OVERLOAD_EXEMPT_PATHS)
        self.slots = threading.BoundedSemaphore(self.max_inflight) if self.max_inflight > 0 else None
        self.shed_count = 0  # per process, for tests and metrics

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in self.exempt:
            return self.get_response(request)
        if self.max_wait > 0 and queue_wait() > self.max_wait:
            return self._shed(request, "queue")
        if self.slots is None:
            return self.get_response(request)
        if not self.slots.acquire(blocking=False):
            return self._shed(request, "busy")
        try:
            response = self.get_response(request)
        except BaseException:
            self.slots.release()
            raise
        # released when the server has sent the response (streamed ones included)
        response._resource_closers.append(self.slots.release)
        return response

    def _shed(self, request: HttpRequest, reason: str) -> HttpResponse:
        from governance.api.errors import problem_response

        self.shed_count += 1
        with translation.override(translation.get_language_from_request(request)):
            response = problem_response(
                status_code=503, code="overloaded", title=_("The service is busy."),
                detail=_("Too many requests are being processed; retry in %(seconds)s s.")
                % {"seconds": self.retry_after},
                extra={"reason": reason},
            )
        response["Retry-After"] = self.retry_after
        # Django logs every 5xx as an error with the request; shedding is expected under load (and
        # counted), and a log line per shed request would add work exactly when there is no time.
        response._has_been_logged = True
        response["Cache-Control"] = "no-store"
        return response
