"""DRF authentication with hashed API tokens: ``Authorization: Bearer mmr_…`` (or ``Token``)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from governance.access.models import ApiToken
from governance.access.tokens import api_token_check


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.", code="bad_token")
        token = api_token_check(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.", code="bad_token")
        if token.last_used_at is None or (timezone.now() - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="mamoru"'
