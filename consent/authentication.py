"""DRF authentication with site keys: ``Authorization: Bearer mcpk_…`` (publishable, browser)
or ``Bearer mcsk_…`` (secret, server). Preference-centre pages use short-lived signed tokens
(``mcpt_…``) with publishable scope.

Verified keys are cached in-process. Each carries the keys revision (``ConsentRevision.keys``) read
just before it was verified. The consent check reads the current revision in its own statement
and verifies the key again only when it moved, so on the check a revoked or rotated key stops
working on the next request, and no request waits on a timed re-verification. The other
endpoints re-verify a cached key after ``KEY_CACHE_SECONDS``, so for them revocation takes effect
within that many seconds.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.utils import timezone
from rest_framework import authentication, exceptions

from consent.models import KeyKind, Site
from consent.ratelimit import rate_limit_hit

KEY_CACHE_SECONDS = 10.0
PAGE_TOKEN_PREFIX = "mcpt_"
PAGE_TOKEN_SALT = "consent.preference-page"
PAGE_TOKEN_MAX_AGE = 6 * 3600


@dataclass(frozen=True)
class SiteCredential:
    """``request.auth`` for site-key requests."""

    site: Site
    kind: str
    key_id: str
    revision: int = 0  # ConsentRevision.keys when verified
    expires_at: datetime | None = None

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def workspace(self):
        return self.site.workspace


class SiteUser:
    """A stand-in user for site keys (authenticated, not staff, no permissions)."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, label: str):
        self.username = label

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


_cache: dict[str, tuple[float, SiteCredential | None]] = {}
_cache_lock = threading.Lock()


def page_token_create(*, site: Site) -> str:
    return PAGE_TOKEN_PREFIX + signing.dumps({"site": site.pk}, salt=PAGE_TOKEN_SALT, compress=True)


def _resolve(secret: str) -> SiteCredential | None:
    from consent.selectors import consent_revision

    revision = consent_revision("keys")  # first: a change committed meanwhile shows as a newer revision
    if secret.startswith(PAGE_TOKEN_PREFIX):
        try:
            data = signing.loads(secret[len(PAGE_TOKEN_PREFIX):], salt=PAGE_TOKEN_SALT, max_age=PAGE_TOKEN_MAX_AGE)
        except signing.BadSignature:
            return None
        site = Site.objects.select_related("workspace").filter(pk=data.get("site")).first()
        # Its signature's age is checked again within KEY_CACHE_SECONDS, whoever asks.
        expires = timezone.now() + timedelta(seconds=KEY_CACHE_SECONDS)
        return SiteCredential(site=site, kind=KeyKind.PUBLISHABLE, key_id=f"page-{site.pk}",
                              revision=revision, expires_at=expires) if site else None
    from consent.services import site_key_check

    key = site_key_check(secret)
    if key is None:
        return None
    return SiteCredential(site=key.site, kind=key.kind, key_id=key.key_id, revision=revision,
                          expires_at=key.expires_at)


def _cache_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def credential_for(secret: str, *, max_age: float | None = KEY_CACHE_SECONDS) -> SiteCredential | None:
    """The verified credential for ``secret`` (``None``: unknown, revoked or expired).

    ``max_age=None`` keeps a cached credential for as long as the caller confirms its revision
    (the consent check does, see :func:`credential_forget`).
    """
    cache_key = _cache_key(secret)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(cache_key)
    if hit is not None and (max_age is None or now - hit[0] < max_age):
        credential = hit[1]
        if credential is None or not credential.expired():
            return credential
    credential = _resolve(secret)
    with _cache_lock:
        if len(_cache) > 10000:
            _cache.clear()
        _cache[cache_key] = (now, credential)
    return credential


def credential_forget(secret: str) -> None:
    """Drop the cached credential (its keys revision is older than the database's)."""
    with _cache_lock:
        _cache.pop(_cache_key(secret), None)


def key_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


class SiteKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate site keys; leave other Authorization headers to the next class."""

    prefixes = ("mcpk_", "mcsk_", PAGE_TOKEN_PREFIX)

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if len(header) != 2 or header[0].lower() != "bearer" or not header[1].startswith(self.prefixes):
            return None
        credential = credential_for(header[1])
        if credential is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked site key.", code="bad_site_key")
        origin = request.headers.get("Origin")
        if origin and credential.kind == KeyKind.PUBLISHABLE and not header[1].startswith(PAGE_TOKEN_PREFIX):
            allowed = {o.rstrip("/") for o in credential.site.allowed_origins or []}
            if origin.rstrip("/") not in allowed:
                raise exceptions.PermissionDenied(
                    "This origin is not allowed for the site's key.", code="origin_not_allowed"
                )
        rate_limit_hit(key_id=credential.key_id, limit_per_minute=credential.site.rate_limit_per_minute)
        return SiteUser(f"site:{credential.site.slug}:{credential.kind}"), credential

    def authenticate_header(self, request):
        return 'Bearer realm="mamoru-consent"'
