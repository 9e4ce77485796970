"""DRF authentication: hashed, scoped API tokens (``Authorization: Bearer mmr_…`` or ``Token``) and
sessions that need a second factor (:mod:`governance.access.mfa`)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from governance.access.mfa import MFA_REQUIRED_CODE, MFA_REQUIRED_DETAIL, mfa_blocks
from governance.access.scopes import user_limit_to_scopes
from governance.access.tokens import api_token_check, api_token_mark_used


class MfaRequired(exceptions.PermissionDenied):
    default_detail = MFA_REQUIRED_DETAIL
    default_code = MFA_REQUIRED_CODE


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
        api_token_mark_used(token=token)
        user = token.user
        user_limit_to_scopes(user, token.scopes)  # permissions outside the scopes are denied
        return user, token

    def authenticate_header(self, request):
        return 'Bearer realm="mamoru"'


class VerifiedSessionAuthentication(authentication.SessionAuthentication):
    """Session authentication that refuses, with 403 ``mfa_required``, what needs a second factor."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None and mfa_blocks(result[0], method=request.method):
            raise MfaRequired()
        return result
