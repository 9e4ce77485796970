"""Restriction, objection, opt-out of sale/sharing and limiting sensitive data, via the consent app.

The consent app's services are looked up when a request runs. When they are missing the node
fails with a clear error (the request then needs attention) — it is never marked done.
"""

from __future__ import annotations

import importlib

from django.conf import settings

from dsr.execution import NodeFailed, request_details
from dsr.models import DataSubjectRequest, RequestType

ERR_NO_CONSENT = (
    "the consent app's services (consent.services.consent_record_for_profile / "
    "profile_restriction_set) are not available: this right cannot be applied automatically"
)


def _consent_services():
    try:
        module = importlib.import_module("consent.services")
    except ImportError:
        return None
    if not hasattr(module, "consent_record_for_profile") or not hasattr(module, "profile_restriction_set"):
        return None
    return module


def _purpose_codes(request: DataSubjectRequest) -> list[str] | None:
    given = request_details(request).get("purposes")
    if given:
        return list(given)
    categories = {
        RequestType.OPT_OUT_SALE: ["sale", "sharing"],
        RequestType.LIMIT_SENSITIVE: ["limit_sensitive"],
    }.get(request.request_type)
    if categories is None:
        return None
    configured = getattr(settings, "MAMORU_DSR_CCPA_PURPOSES", {}).get(request.request_type)
    if configured:
        return list(configured)
    # The purposes whose published version carries the CCPA category.
    from django.apps import apps

    purpose = apps.get_model("consent", "Purpose")
    return list(
        purpose.objects.filter(current_version__ccpa_category__in=categories).values_list("code", flat=True)
    )


def _profile(request: DataSubjectRequest):
    """The subject's profile; created from the verified e-mail when unknown (opt-outs need a record)."""
    if request.profile_id:
        return request.profile
    from governance.subjects.services import IdentityInput, profile_upsert

    profile = profile_upsert(
        workspace=request.workspace, identities=[IdentityInput("email", request.email, verified=True)],
        jurisdiction=request.jurisdiction, source="dsr",
    ).profile
    DataSubjectRequest.objects.filter(pk=request.pk).update(profile=profile)
    return profile


def consent_apply(*, request: DataSubjectRequest) -> dict:
    services = _consent_services()
    if services is None:
        raise NodeFailed(ERR_NO_CONSENT)
    profile = _profile(request)
    codes = _purpose_codes(request)
    reason = f"{request.request_type} request {str(request.id)[:8]}"
    kind = request.request_type
    if kind == RequestType.RESTRICTION or (kind == RequestType.OBJECTION and not codes):
        # Art. 18 / 21 without named purposes: every purpose answers "not allowed".
        services.profile_restriction_set(profile=profile, purpose_codes=codes, reason=reason)
        return {"rows_changed": len(codes or []) or 1, "restricted": codes or "all"}
    if kind in {RequestType.OPT_OUT_SALE, RequestType.LIMIT_SENSITIVE} and not codes:
        raise NodeFailed(f"no purpose carries the CCPA category for {kind}: nothing to opt out of; "
                         "name the purposes in details.purposes")
    # CCPA opt-outs are refusals; an objection withdraws what was given.
    state = "withdrawn" if kind == RequestType.OBJECTION else "refused"
    for code in codes or []:
        services.consent_record_for_profile(
            profile=profile, purpose_code=code, state=state, method="dsr", note=reason,
        )
    if kind == RequestType.LIMIT_SENSITIVE:
        services.profile_restriction_set(profile=profile, purpose_codes=codes, reason=reason)
    return {"rows_changed": len(codes or []), "purposes": codes}
