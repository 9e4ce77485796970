"""One id per request, in every log line it causes, in the Celery tasks it enqueues, in its audit entries.

- :class:`RequestIdMiddleware` (near the top of ``MIDDLEWARE``) takes the incoming ``X-Request-ID``
  only from a proxy listed in ``MAMORU_TRUSTED_PROXIES`` (a client must not choose what the logs and
  the sealed audit entries say), and only when it looks like an id; otherwise it makes one. The id is
  returned in the response's ``X-Request-ID`` header.
- The id lives in a context variable: log records get it (:class:`RequestIdFilter`), audit entries
  seal it as their correlation id (``AUDITLOG_CID_GETTER``), and Celery messages published while it
  is set carry it in a header (:mod:`governance.observability.celery_signals`), so a task's log
  lines and audit entries name the request that caused them.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache, partial

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
# Celery message header that carries the id from the publisher to the task.
TASK_HEADER = "mamoru_request_id"
# What an incoming id may look like: no spaces, quotes, '@' or control characters, at most 128.
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")

request_id_var: ContextVar[str | None] = ContextVar("mamoru_request_id", default=None)
# Inside a Celery task: the task's name and id (for log lines).
task_var: ContextVar[tuple[str, str] | None] = ContextVar("mamoru_task", default=None)


def current_request_id() -> str | None:
    """The id of the request (or task) being handled in this context, if any."""
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> bool:
    return bool(value) and _VALID.fullmatch(value) is not None


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def from_trusted_proxy(address: str | None) -> bool:
    """Whether the connecting address is one of ``MAMORU_TRUSTED_PROXIES`` (addresses or CIDRs)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.MAMORU_TRUSTED_PROXIES)))


def request_id_for(request: HttpRequest) -> str:
    incoming = request.headers.get(HEADER)
    if valid_request_id(incoming) and from_trusted_proxy(request.META.get("REMOTE_ADDR")):
        return incoming
    return new_request_id()


class RequestIdMiddleware:
    """Give the request its id (trusted proxy's or a new one); answer it in ``X-Request-ID``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request)
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        except BaseException:
            _forget(token)
            raise
        response[HEADER] = request_id
        # Kept until the response is closed: Django logs "Not Found: …" and the like after the
        # middleware returns, and a streamed body's log lines belong to the request too.
        response._resource_closers.append(partial(_forget, token))
        return response


def _forget(token) -> None:
    try:
        request_id_var.reset(token)
    except ValueError:  # closed in another context (ASGI): nothing of ours is left set there
        request_id_var.set(None)
