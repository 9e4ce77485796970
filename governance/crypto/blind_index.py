"""Blind indexes: a keyed HMAC-SHA256 over a normalised value, for exact-match lookup of
encrypted identities without decrypting. Each identity kind has its own domain so the same
string as an e-mail and as a customer id gives unrelated digests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=4)
def _key(spec: str) -> bytes:
    padded = spec + "=" * (-len(spec) % 4)
    raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    if len(raw) < 32:
        raise ValueError("MAMORU_BLIND_INDEX_KEY must decode to at least 32 bytes")
    return raw


def blind_index(*, kind: str, value: str) -> str:
    """Return the 64-hex-digit blind index of an already normalised value."""
    message = kind.encode("utf-8") + b"\x00" + value.encode("utf-8")
    return hmac.new(_key(settings.MAMORU_BLIND_INDEX_KEY), message, hashlib.sha256).hexdigest()
