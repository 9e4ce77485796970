"""Rate limits for anonymous callers, counted in the shared cache.

One mechanism for every public limit (the portal, the public DSR API, anything that e-mails a
code): a fixed-window counter per (scope, value) in ``CACHES["default"]`` — Redis, or the database
cache in the main database — so a limit holds in total however many web processes or machines
serve the requests. Cache add/incr are atomic on both (governance/cache_backends.py for the
database cache).

* The value is what is limited: the client's address from :func:`audit.history.client_address`
  (``X-Forwarded-For`` only from a peer in ``MAMORU_TRUSTED_PROXIES``, and only an IP address:
  ``unknown`` or other non-addresses count as the proxy itself; IPv6 addresses counted per /64,
  the block one subscriber gets) or a normalised e-mail address. The cache never holds it:
  keys carry an HMAC of it under a key derived from ``SECRET_KEY``.
* Windows are fixed, ``period`` seconds long; each (scope, value) has its own offset so that
  windows do not all end at once. At most ``limit`` hits are accepted per window.
* Over the limit: :class:`RateLimited` (HTTP 429, code ``rate_limited``, ``Retry-After`` = the
  seconds until the window ends). The cache unreachable: :class:`RateLimitUnavailable` (503) —
  a limit that cannot be counted is not waived.

Django's ``django-ratelimit`` does the same counting but refuses the database cache (its
``incr`` is not atomic: system check E003) and offers no Retry-After; this module is the small
part of it we need, on the atomic cache.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.utils.translation import gettext_lazy as _
from rest_framework.throttling import BaseThrottle

from audit.history import client_address
from governance.api.errors import DomainError

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"
KEY_PREFIX = "mamoru-rl"
IPV6_PREFIX = 64  # one subscriber's block: rotating addresses inside it is one client
EXPIRY_MARGIN = 5  # seconds a counter outlives its window (clock and rounding slack)


@dataclass(frozen=True)
class Rate:
    """``limit`` hits per ``period`` seconds."""

    limit: int
    period: int

    @classmethod
    def per_hour(cls, limit: int) -> Rate:
        return cls(limit=int(limit), period=3600)

    @classmethod
    def per_minutes(cls, limit: int, minutes: int) -> Rate:
        return cls(limit=int(limit), period=60 * minutes)

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


@dataclass(frozen=True)
class Usage:
    """A counter's state: ``count`` hits in the current window, which ends in ``seconds_left``."""

    count: int
    limit: int
    seconds_left: int

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    title = _("Too many requests; try again later.")

    def __init__(self, detail: str | None = None, *, retry_after: int, scope: str = ""):
        super().__init__(detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after
        self.scope = scope


class RateLimitUnavailable(DomainError):
    status_code = 503
    code = "rate_limit_unavailable"
    title = _("The service cannot count requests right now; try again shortly.")

    def __init__(self, detail: str | None = None):
        super().__init__(detail, extra={"retry_after": 30})
        self.retry_after = 30


def _digest(scope: str, value: str) -> str:
    secret = hashlib.sha256(b"mamoru.throttling:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(secret, f"{scope}\x00{value}".encode(), hashlib.sha256).hexdigest()


def _window(digest: str, period: int, now: float) -> tuple[int, int]:
    """(window number, seconds until it ends) for a key whose windows start at its own offset."""
    offset = int(digest[:8], 16) % period
    shifted = int(now) - offset
    return shifted // period, period - shifted % period


def _key(scope: str, digest: str, window: int) -> str:
    return f"{KEY_PREFIX}:{scope}:{digest[:32]}:{window}"


def throttle_usage(*, scope: str, value: str, rate: Rate, now: float | None = None) -> Usage:
    """The counter for ``value`` in ``scope`` without counting a hit."""
    digest = _digest(scope, value)
    window, left = _window(digest, rate.period, time.time() if now is None else now)
    try:
        count = caches[CACHE_ALIAS].get(_key(scope, digest, window), 0)
    except Exception as exc:
        raise _unavailable(exc) from exc
    return Usage(count=int(count), limit=rate.limit, seconds_left=left)


def throttle_hit(*, scope: str, value: str, rate: Rate, detail: str | None = None) -> Usage:
    """Count one hit of ``value`` in ``scope``; raise :class:`RateLimited` over the limit.

    ``detail``: the problem's text, ``{seconds}`` replaced by the seconds to wait. Hits over the
    limit are counted too (they do not extend the window).
    """
    digest = _digest(scope, value)
    window, left = _window(digest, rate.period, time.time())
    key = _key(scope, digest, window)
    cache = caches[CACHE_ALIAS]
    try:
        if cache.add(key, 1, timeout=left + EXPIRY_MARGIN):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # gone between add and incr (window end): a fresh count
                cache.add(key, 1, timeout=left + EXPIRY_MARGIN)
                count = 1
    except Exception as exc:
        raise _unavailable(exc) from exc
    usage = Usage(count=int(count), limit=rate.limit, seconds_left=left)
    if usage.exceeded:
        text = detail or f"Limit of {rate.limit} requests per {_period_text(rate.period)} reached; retry in {{seconds}} s."
        raise RateLimited(text.format(seconds=left), retry_after=left, scope=scope)
    return usage


def _unavailable(exc: Exception) -> RateLimitUnavailable:
    logger.error("rate-limit cache unreachable: %s", type(exc).__name__)
    return RateLimitUnavailable()


def _period_text(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def client_ip(request) -> str:
    """The client as rate limits count it: its address as the audit log records it (forwarded
    headers only from trusted proxies), IPv6 reduced to its /64."""
    address = client_address(request)[0] or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False).network_address) + f"/{IPV6_PREFIX}"
    return str(ip)


class ClientRateThrottle(BaseThrottle):
    """DRF throttle: anonymous callers per client address (see :func:`client_ip`).

    Subclasses set ``scope`` and ``rate()``; authenticated callers (staff, integrations with an
    API token) are not limited here. Over the limit the view answers 429 ``rate_limited`` with
    ``Retry-After``.
    """

    scope = "api"

    def rate(self) -> Rate:
        raise NotImplementedError("ClientRateThrottle subclasses return their Rate.")

    def allow_request(self, request, view) -> bool:
        if getattr(request.user, "is_authenticated", False):
            return True
        throttle_hit(scope=self.scope, value=client_ip(request), rate=self.rate())
        return True


_NOT_SHARED = {
    "django.core.cache.backends.locmem.LocMemCache": "counts in each process's memory",
    "django.core.cache.backends.dummy.DummyCache": "counts nothing",
    "django.core.cache.backends.filebased.FileBasedCache": "has no atomic increment",
    "django.core.cache.backends.db.DatabaseCache": "has no atomic increment (use governance.cache_backends.DatabaseCache)",
}


@checks.register(checks.Tags.caches)
def check_rate_limit_cache(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """access.W001: rate limits need a cache every process shares, with an atomic increment."""
    backend = settings.CACHES.get(CACHE_ALIAS, {}).get("BACKEND", "")
    problem = _NOT_SHARED.get(backend)
    if problem is None:
        return []
    return [checks.Warning(
        f"The cache {backend} {problem}: rate limits would not hold across processes.",
        hint="Set CACHE_URL to a Redis URL, or leave it unset for the database cache.",
        id="access.W001",
    )]
