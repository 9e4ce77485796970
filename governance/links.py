"""Absolute links to this service: from ``MAMORU_PUBLIC_URL`` when set, else from the request.

A link is absolute only where it must be (e-mail, files, receipts); pages link by path. With
``MAMORU_PUBLIC_URL`` unset, the base is the request's own scheme and host: the host is one
``ALLOWED_HOSTS`` accepted (Django refuses any other ``Host`` before a view runs), and the scheme
is https only when the connection was, or — in production — the proxy said so in
``X-Forwarded-Proto`` (``SECURE_PROXY_SSL_HEADER``). ``X-Forwarded-Host`` is not believed
(``USE_X_FORWARDED_HOST`` stays off). Work outside a request (a Celery task mailing a link) uses
the base captured when the request that started it came in (``DataSubjectRequest.public_base_url``).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def public_base_url(request: HttpRequest | None = None) -> str:
    """``scheme://host[:port]`` without a trailing slash, or ``""`` when nothing tells it."""
    configured = (getattr(settings, "MAMORU_PUBLIC_URL", "") or "").rstrip("/")
    if configured:
        return configured
    if request is None:
        return ""
    return f"{request.scheme}://{request.get_host()}"


def absolute_link(path: str, *, base: str = "") -> str:
    """``path`` under ``MAMORU_PUBLIC_URL``, else under ``base``; the bare path when neither is known."""
    root = (getattr(settings, "MAMORU_PUBLIC_URL", "") or "").rstrip("/") or base.rstrip("/")
    return f"{root}{path}"
