"""OpenAPI description of Mamoru's API token authentication."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "governance.access.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mmr_<id>_<secret>",
            "description": "A personal API token created in the admin (shown once). "
            "`Authorization: Bearer mmr_…`",
        }


class VerifiedSessionScheme(OpenApiAuthenticationExtension):
    target_class = "governance.access.authentication.VerifiedSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The admin's session, after the second factor (else 403 `mfa_required`).",
        }
