"""Creating, checking and revoking API tokens."""

from __future__ import annotations

import hmac
from datetime import datetime

from django.utils import timezone

from governance.access.models import TOKEN_PREFIX, ApiToken, token_digest


def api_token_create(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never stored and shown only now."""
    key_id, secret = ApiToken.new_secret()
    token = ApiToken.objects.create(
        user=user, name=name, key_id=key_id, digest=token_digest(secret), expires_at=expires_at
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


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
