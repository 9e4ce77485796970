"""Signal receivers wired in ``ConsentConfig.ready()``: erasure, merges, per-site CORS and key
revisions."""

from __future__ import annotations


def on_profile_shredded(sender, profile, actor=None, **kwargs) -> None:
    """Redact the identity link of the profile's events; keep the proof and the chain."""
    from consent.services import consent_events_redact

    consent_events_redact(profile=profile, actor=actor)


def on_profile_merged(sender, survivor, merged, actor=None, **kwargs) -> None:
    """Move the merged profile's events and states to the survivor."""
    from consent.services import consent_profile_merge

    consent_profile_merge(survivor=survivor, merged=merged, actor=actor)


def cors_allow_site_origin(sender, request, **kwargs) -> bool:
    """Allow a browser origin when some site lists it (the key then decides which site)."""
    origin = request.headers.get("Origin", "")
    if not origin or not request.path.startswith("/api/v1/consent/"):
        return False
    from consent.selectors import site_origins_all

    return origin in site_origins_all()


def on_key_scope_changed(sender, **kwargs) -> None:
    """A site key, site or workspace was saved or deleted: cached keys must be verified again.

    Saves through the admin or any service reach here; the services that change keys with
    ``update()`` (revoke, rotate) bump the revision themselves.
    """
    from consent.services import keys_revision_bump

    keys_revision_bump()
