"""The PII section of the person page: what the scanner saw about this person (never values)."""

from __future__ import annotations

from django.db.models import Count, Max
from django.utils.translation import gettext_lazy as _

from governance.pii.models import ScanFinding
from governance.subjects.person import BasePersonSection, person_sections

LIMIT = 50
ENTITY_LABELS = {
    "EMAIL_ADDRESS": _("E-mail address"), "PHONE_NUMBER": _("Phone number"),
    "CREDIT_CARD": _("Payment card number"), "JP_MY_NUMBER": _("My Number (individual number)"),
    "JP_CORPORATE_NUMBER": _("Corporate number"), "JP_POSTAL_CODE": _("Postal code"),
    "LOCATION": _("Place or address"), "PERSON": _("Person's name"), "DATE_TIME": _("Date"),
    "IP_ADDRESS": _("IP address"), "IBAN_CODE": _("Bank account (IBAN)"), "URL": _("Web address"),
}


def entity_label(code: str) -> str:
    return str(ENTITY_LABELS.get(code, code.replace("_", " ").capitalize()))


@person_sections.register
class FindingsSection(BasePersonSection):
    identifier = "pii"
    order = 50
    title = _("PII findings")
    template = "pii/person/section.html"

    def build(self, *, user, profile):
        if not user.has_perm("pii.view_scanfinding"):
            return None
        findings = ScanFinding.objects.filter(profile=profile)
        summary = [
            {"entity": entity_label(row["entity_type"]), "count": row["n"], "last": row["last"]}
            for row in findings.values("entity_type").annotate(n=Count("id"), last=Max("created_at"))
            .order_by("-n", "entity_type")
        ]
        latest = [
            {"at": f.created_at, "entity": entity_label(f.entity_type), "field": f.field_path,
             "source": f.source, "channel": f.get_channel_display(), "score": f"{f.score:.2f}",
             "expected": f.expected}
            for f in findings.order_by("-created_at", "-id")[:LIMIT]
        ]
        return {"summary": summary, "latest": latest, "limit": LIMIT}
