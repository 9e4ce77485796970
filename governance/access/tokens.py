"""Creating, checking and revoking API tokens: scoped, expiring, shown once."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from governance.access.models import TOKEN_PREFIX, ApiToken, token_digest
from governance.access.scopes import DEFAULT_SCOPES, scopes_normalise

# Last use is stamped at most this often: no write per request.
LAST_USED_RESOLUTION_SECONDS = 60


class TokenExpiryInvalid(ValueError):
    """An expiry in the past or beyond ``MAMORU_API_TOKEN_MAX_DAYS``."""


def api_token_expiry_default() -> datetime:
    return timezone.now() + timedelta(days=settings.MAMORU_API_TOKEN_DAYS)


def api_token_expiry_check(expires_at: datetime) -> None:
    now = timezone.now()
    if expires_at <= now:
        raise TokenExpiryInvalid("The expiry must be in the future.")
    if expires_at > now + timedelta(days=settings.MAMORU_API_TOKEN_MAX_DAYS):
        raise TokenExpiryInvalid(
            f"A token may live at most {settings.MAMORU_API_TOKEN_MAX_DAYS} days (MAMORU_API_TOKEN_MAX_DAYS)."
        )


def api_token_create(
    *, user, name: str, scopes: Iterable[str] = DEFAULT_SCOPES, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never stored and shown only now.

    ``expires_at`` defaults to ``MAMORU_API_TOKEN_DAYS`` from now and may not exceed
    ``MAMORU_API_TOKEN_MAX_DAYS``; every token expires.
    """
    scopes = scopes_normalise(scopes)
    if not scopes:
        raise ValueError("A token needs at least one scope.")
    expires_at = expires_at or api_token_expiry_default()
    api_token_expiry_check(expires_at)
    key_id, secret = ApiToken.new_secret()
    token = ApiToken.objects.create(
        user=user, name=name, key_id=key_id, digest=token_digest(secret), expires_at=expires_at,
        scopes=scopes,
    )
    return token, secret


def api_token_check(secret: str) -> ApiToken | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    key_id = secret[len(TOKEN_PREFIX) :].split("_", 1)[0]
    token = ApiToken.objects.select_related("user").filter(key_id=key_id).first()
    if token is None or not hmac.compare_digest(token.digest, token_digest(secret)):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    return token


def api_token_mark_used(*, token: ApiToken) -> None:
    """Stamp the last use, at most once a minute (a conditional UPDATE, so replicas agree)."""
    now = timezone.now()
    if token.last_used_at is not None and (now - token.last_used_at).total_seconds() < LAST_USED_RESOLUTION_SECONDS:
        return
    stale = now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
    ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk).update(
        last_used_at=now
    )


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
