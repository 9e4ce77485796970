"""Portal rate limits: fixed windows counted in Django's cache.

Configure a shared cache (Redis or the database cache) when several processes serve the portal;
with the default per-process memory cache each process counts on its own.
"""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache


def client_key(request) -> str:
    """A key for the client's address, hashed so that the cache holds no IP addresses."""
    addr = request.META.get("REMOTE_ADDR", "") or "unknown"
    return hashlib.sha256(b"mamoru-portal:" + addr.encode()).hexdigest()[:32]


def rate_limit_exceeded(*, scope: str, key: str, limit: int, window_seconds: int) -> bool:
    """Count one hit; True when ``key`` made more than ``limit`` hits in the current window."""
    window = int(time.time() // window_seconds)
    name = f"portal-rl:{scope}:{key}:{window}"
    if cache.add(name, 1, timeout=window_seconds + 5):
        return limit < 1
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.set(name, 1, timeout=window_seconds + 5)
        count = 1
    return count > limit
