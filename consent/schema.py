"""OpenAPI description of site-key authentication (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SiteKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "consent.authentication.SiteKeyAuthentication"
    name = "siteKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Site key: `mcpk_…` (publishable, browser; browser ids only; needs an "
            "`Origin` among the site's allowed origins, else 403 `origin_required` / "
            "`origin_not_allowed`) or `mcsk_…` (secret, server; whole site scope).",
        }
