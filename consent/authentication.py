"""DRF authentication with site keys: ``Authorization: Bearer mcpk_…`` (publishable, browser)
or ``Bearer mcsk_…`` (secret, server). Preference-centre pages use short-lived signed tokens
(``mcpt_…``) with publishable scope.

Verified keys are cached in-process, each with the keys revision (``ConsentRevision.keys``) read
just before it was verified; the revision moves whenever a key is revoked or rotated or a key,
site or workspace is saved or deleted. A cached key is used again only while the revision is
unchanged:

* the consent check reads the current revision in its own statement, so a revoked or rotated key
  is refused on its next check, and no check waits on a timed re-verification;
* the other endpoints confirm the revision with one small query once a cached key is older than
  ``KEY_CACHE_SECONDS`` (1 s), so a revocation takes effect there within a second; the key itself
  is verified again only when the revision moved.

Unknown keys are remembered too (so a client retrying a bad key costs no lookup), in a separate,
smaller LRU: a client spraying random keys evicts only other unknown keys, never the real ones.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.utils import timezone
from rest_framework import authentication, exceptions

from consent.models import KeyKind, Site
from consent.ratelimit import rate_limit_hit

KEY_CACHE_SECONDS = 1.0  # a cached key's revision is confirmed again after this long (non-check endpoints)
KEY_CACHE_SIZE = 10_000  # verified keys per process (LRU)
UNKNOWN_KEY_CACHE_SIZE = 1_000  # unknown, revoked or expired keys per process (LRU)
PAGE_TOKEN_RECHECK_SECONDS = 10.0  # a page token's signature age is checked again after this long
PAGE_TOKEN_PREFIX = "mcpt_"
PAGE_TOKEN_SALT = "consent.preference-page"
PAGE_TOKEN_MAX_AGE = 6 * 3600
ERR_ORIGIN_REQUIRED = (
    "A publishable key (mcpk_) is accepted only from a browser on one of the site's allowed origins, "
    "and this request has no Origin header. Call the API from the site's pages (browsers send "
    "Origin), add the page's origin to the site's allowed origins, or call from a server with the "
    "site's secret key (mcsk_)."
)


@dataclass(frozen=True)
class SiteCredential:
    """``request.auth`` for site-key requests."""

    site: Site
    kind: str
    key_id: str
    revision: int = 0  # ConsentRevision.keys when verified
    expires_at: datetime | None = None
    page_token: bool = False  # an mcpt_ token of our own preference centre, not a site key

    @property
    def needs_origin(self) -> bool:
        """A publishable site key works only from a browser on one of the site's origins."""
        return self.kind == KeyKind.PUBLISHABLE and not self.page_token

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


@dataclass
class _Entry:
    checked_at: float  # time.monotonic() when the revision was last confirmed
    revision: int  # ConsentRevision.keys read just before the key was looked up
    credential: SiteCredential | None


class _KeyCache:
    """Two LRUs under one lock: verified credentials, and keys that did not verify."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.known: OrderedDict[str, _Entry] = OrderedDict()
        self.unknown: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str) -> _Entry | None:
        with self.lock:
            for table in (self.known, self.unknown):
                entry = table.get(key)
                if entry is not None:
                    table.move_to_end(key)
                    return entry
        return None

    def put(self, key: str, entry: _Entry) -> None:
        with self.lock:
            self.known.pop(key, None)
            self.unknown.pop(key, None)
            table, size = (
                (self.known, KEY_CACHE_SIZE) if entry.credential is not None else (self.unknown, UNKNOWN_KEY_CACHE_SIZE)
            )
            table[key] = entry
            while len(table) > size:
                table.popitem(last=False)

    def pop(self, key: str) -> None:
        with self.lock:
            self.known.pop(key, None)
            self.unknown.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self.known.clear()
            self.unknown.clear()


_cache = _KeyCache()


def page_token_create(*, site: Site) -> str:
    return PAGE_TOKEN_PREFIX + signing.dumps({"site": site.pk}, salt=PAGE_TOKEN_SALT, compress=True)


def _keys_revision() -> int:
    from consent.selectors import consent_revision

    return consent_revision("keys")


def _resolve(secret: str, revision: int) -> SiteCredential | None:
    """Verify ``secret``; ``revision`` is the keys revision read before this lookup."""
    if secret.startswith(PAGE_TOKEN_PREFIX):
        try:
            data = signing.loads(secret[len(PAGE_TOKEN_PREFIX):], salt=PAGE_TOKEN_SALT, max_age=PAGE_TOKEN_MAX_AGE)
        except signing.BadSignature:
            return None
        site = Site.objects.select_related("workspace").filter(pk=data.get("site")).first()
        # Its signature's age is checked again within PAGE_TOKEN_RECHECK_SECONDS, whoever asks.
        expires = timezone.now() + timedelta(seconds=PAGE_TOKEN_RECHECK_SECONDS)
        return SiteCredential(site=site, kind=KeyKind.PUBLISHABLE, key_id=f"page-{site.pk}",
                              revision=revision, expires_at=expires, page_token=True) if site else None
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

    A cached answer older than ``max_age`` seconds is kept if the keys revision has not moved
    since (one small query) and verified again if it has. ``max_age=None`` skips that query: the
    caller confirms the revision itself (the consent check does, see :func:`credential_forget`).
    """
    cache_key = _cache_key(secret)
    now = time.monotonic()
    entry = _cache.get(cache_key)
    revision = None
    if entry is not None:
        if max_age is not None and now - entry.checked_at >= max_age:
            revision = _keys_revision()
            if revision == entry.revision:
                entry.checked_at = now  # confirmed: nothing about keys, sites or workspaces changed
            else:
                entry = None
        if entry is not None and (entry.credential is None or not entry.credential.expired()):
            return entry.credential
    if revision is None:
        revision = _keys_revision()  # first: a change committed meanwhile shows as a newer revision
    credential = _resolve(secret, revision)
    _cache.put(cache_key, _Entry(checked_at=now, revision=revision, credential=credential))
    return credential


def credential_forget(secret: str) -> None:
    """Drop the cached credential (its keys revision is older than the database's)."""
    _cache.pop(_cache_key(secret))


def key_cache_clear() -> None:
    _cache.clear()


class SiteKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate site keys; leave other Authorization headers to the next class."""

    prefixes = ("mcpk_", "mcsk_", PAGE_TOKEN_PREFIX)

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if len(header) != 2 or header[0].lower() != "bearer" or not header[1].startswith(self.prefixes):
            return None
        credential = credential_for(header[1], max_age=KEY_CACHE_SECONDS)
        if credential is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked site key.", code="bad_site_key")
        origin = request.headers.get("Origin")
        if credential.needs_origin:
            # Without this, any client could use the key that every page of the site shows and
            # record "given" for any browser id: only a browser on an allowed origin may.
            if not origin:
                raise exceptions.PermissionDenied(ERR_ORIGIN_REQUIRED, code="origin_required")
            allowed = {o.rstrip("/") for o in credential.site.allowed_origins or []}
            if origin.rstrip("/") not in allowed:
                raise exceptions.PermissionDenied(
                    "This origin is not allowed for the site's key.", code="origin_not_allowed"
                )
        rate_limit_hit(key_id=credential.key_id, limit_per_minute=credential.site.rate_limit_per_minute)
        return SiteUser(f"site:{credential.site.slug}:{credential.kind}"), credential

    def authenticate_header(self, request):
        return 'Bearer realm="mamoru-consent"'
