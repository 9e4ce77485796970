"""The consent section of the person page: each purpose's state, and the history with receipts."""

from __future__ import annotations

from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from consent.models import ConsentStateValue, Method, PurposeVersion
from consent.receipts import receipt_token
from consent.selectors import consent_events_for_profile, profile_consent_overview
from governance.subjects.person import BasePersonSection, person_sections

HISTORY_LIMIT = 100

# What a check would answer, in words (consent.selectors.consent_decide reasons).
DECISION_REASONS = {
    "restricted": _("Processing restricted"),
    "objected": _("The person objected"),
    "legal_basis": _("Allowed on another legal basis"),
    "renewal_required": _("Consent must be renewed (new notice version)"),
    "expired": _("Consent expired"),
    "consent_given": _("Consent given"),
    "consent_refused": _("Consent refused"),
    "consent_withdrawn": _("Consent withdrawn"),
    "consent_expired": _("Consent expired"),
    "opt_out_default": _("Allowed until the person opts out (jurisdiction default)"),
    "no_consent": _("No consent recorded"),
}


@person_sections.register
class ConsentSection(BasePersonSection):
    identifier = "consent"
    order = 30
    title = _("Consent")
    template = "consent/person/section.html"

    def build(self, *, user, profile):
        if not user.has_perm("consent.view_consentevent"):
            return None
        lang = "ja" if (translation.get_language() or "").startswith("ja") else "en"
        names, by_code = {}, {}  # one query: each version's name, and each purpose's newest name
        for v in PurposeVersion.objects.select_related("purpose").order_by("purpose_id", "-version"):
            names[(v.purpose_id, v.version)] = v.name(lang)
            by_code.setdefault(v.purpose.code, v.name(lang))
        states = dict(ConsentStateValue.choices)
        methods = dict(Method.choices)
        current = [
            {"purpose": by_code.get(row["purpose"], row["purpose"]),
             "state": states.get(row["state"], _("No decision")) if row["state"] else _("No decision"),
             "version": row["purpose_version"], "method": methods.get(row["method"], "") if row["method"] else "",
             "allowed": row["allowed"], "reason": DECISION_REASONS.get(row["reason"], row["reason"]),
             "needs_renewal": row["needs_renewal"]}
            for row in profile_consent_overview(profile=profile)
        ]
        events = list(consent_events_for_profile(profile=profile).order_by("-seq")[:HISTORY_LIMIT])
        history = [
            {"seq": e.seq, "at": e.occurred_at,
             "purpose": names.get((e.purpose_id, e.purpose_version), e.purpose.code),
             "version": e.purpose_version, "state": e.get_state_display(), "method": e.get_method_display(),
             "site": e.site.name if e.site_id else "—",
             "receipt_url": reverse("consent-receipt-page", args=[e.pk]) + "?t=" + receipt_token(e),
             "redacted": e.redacted_at is not None}
            for e in events
        ]
        return {"current": current, "history": history, "limit": HISTORY_LIMIT}
