"""Keyed hashes that prove a consent without keeping IP addresses, user agents or identities."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=4)
def _key(spec: str, purpose: bytes) -> bytes:
    return hmac.new(spec.encode(), purpose, hashlib.sha256).digest()


def request_proof(*, ip: str, user_agent: str) -> str:
    """HMAC of the client's IP address and user agent (reproducible only with the key)."""
    message = (ip or "").encode() + b"\x00" + (user_agent or "").encode()
    return hmac.new(_key(settings.MAMORU_PROOF_KEY, b"consent-proof-v1"), message, hashlib.sha256).hexdigest()


def subject_pseudonym(*, identity_index: str) -> str:
    """A stable pseudonym for the identity that recorded a consent (what the chain covers)."""
    return hmac.new(
        _key(settings.MAMORU_PROOF_KEY, b"consent-subject-v1"), identity_index.encode(), hashlib.sha256
    ).hexdigest()
