"""Per-key rate limits shared by every process through the database.

Each process takes requests from a per-minute database counter in blocks (one UPDATE per block,
not per request), so the limit holds across gunicorn workers and machines while the hot path
stays free of writes. A process may overshoot by at most one block (1 % of the limit).
"""

from __future__ import annotations

import threading
import time

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.models import RateWindow, SiteKey
from governance.api.errors import DomainError


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    title = _("Too many requests for this key.")


_lock = threading.Lock()
_local: dict[str, tuple[int, int]] = {}  # key_id -> (window, requests still allowed here)


def _block(limit: int) -> int:
    # 1 % of the limit per reservation (at most 1,000): few shared writes on busy keys, small
    # overshoot on quiet ones.
    return max(1, min(1000, limit // 100))


def rate_limit_hit(*, key_id: str, limit_per_minute: int, now: float | None = None) -> None:
    """Count one request for ``key_id``; raise :class:`RateLimited` over the limit."""
    window = int((now or time.time()) // 60)
    with _lock:
        held_window, left = _local.get(key_id, (window, 0))
        if held_window == window and left > 0:
            _local[key_id] = (window, left - 1)
            return
    block = _block(limit_per_minute)
    used = _reserve(key_id, window, block)  # also stamps the key's last use (to the minute)
    granted = min(block, max(0, limit_per_minute - (used - block)))
    if granted <= 0:
        retry = 60 - int((now or time.time()) % 60)
        raise RateLimited(
            f"Limit of {limit_per_minute} requests per minute reached; retry in {retry} s.",
            extra={"retry_after": retry},
        )
    with _lock:
        _local[key_id] = (window, granted - 1)


def _reserve(key_id: str, window: int, block: int) -> int:
    """Add ``block`` to the shared counter and return its new value.

    A process reserves at least once a minute for a key in use, so this is also where the key's
    ``last_used_at`` is kept (accurate to the minute, with no write on the requests themselves).
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A counter, not a record: an increment lost in a crash only loosens one minute's
            # limit, so the commit does not wait for the WAL flush (an fsync on every 50th check).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # update(), not save(): no signal, so the keys revision (and every process's key cache) stays.
        SiteKey.objects.filter(key_id=key_id).update(last_used_at=timezone.now())
        for _attempt in range(2):
            updated = RateWindow.objects.filter(key_id=key_id, window=window).update(count=F("count") + block)
            if not updated:
                try:
                    with transaction.atomic():
                        RateWindow.objects.create(key_id=key_id, window=window, count=block)
                    if window % 10 == 0:
                        RateWindow.objects.filter(window__lt=window - 60).delete()
                    return block
                except IntegrityError:
                    continue
            return (
                RateWindow.objects.filter(key_id=key_id, window=window).values_list("count", flat=True).first()
                or block
            )
        return block


def rate_limit_reset() -> None:
    """Forget this process's reservations (tests)."""
    with _lock:
        _local.clear()
