"""System checks: connectors and masking strategies registered, settings sane."""

from django.conf import settings
from django.core import checks

REQUIRED_CONNECTORS = ("sql", "redis", "http", "mamoru")
REQUIRED_STRATEGIES = ("null", "hash", "hmac", "random_rewrite", "delete_row", "retain")


@checks.register()
def dsr_registries(app_configs=None, **kwargs):
    from dsr.connectors import connector_types
    from dsr.masking import strategy_names

    errors = []
    missing = sorted(set(REQUIRED_CONNECTORS) - set(connector_types()))
    if missing:
        errors.append(checks.Error(f"connectors not registered: {', '.join(missing)}", id="dsr.E001"))
    missing = sorted(set(REQUIRED_STRATEGIES) - set(strategy_names()))
    if missing:
        errors.append(checks.Error(f"masking strategies not registered: {', '.join(missing)}", id="dsr.E002"))
    if getattr(settings, "MAMORU_DSR_APPI_TARGET_DAYS", 14) < 1:
        errors.append(checks.Error("MAMORU_DSR_APPI_TARGET_DAYS must be at least 1", id="dsr.E003"))
    return errors


@checks.register(checks.Tags.security, deploy=True)
def dsr_public_url(app_configs=None, **kwargs):
    """Production should name its public address: links mailed by workers otherwise depend on the
    address each request came in through (governance.links)."""
    if getattr(settings, "PRODUCTION", False) and not getattr(settings, "MAMORU_PUBLIC_URL", ""):
        return [checks.Warning(
            "MAMORU_PUBLIC_URL is not set: links in e-mails (access packages) are built from the address "
            "each request came in through.",
            hint="Set MAMORU_PUBLIC_URL to the public https:// address of this service.", id="dsr.W001",
        )]
    if getattr(settings, "PRODUCTION", False) and not settings.MAMORU_PUBLIC_URL.startswith("https://"):
        return [checks.Warning("MAMORU_PUBLIC_URL is not an https:// address.", id="dsr.W002")]
    return []
