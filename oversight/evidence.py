"""Audit entries as people read them: the audit entry admin and the person page's access log.

One presentation for both: actor, action, object, fields, outcome, reason (masked; the full text
only for roles that may reveal, each reveal itself recorded) and via / client address (masked for
roles that may not reveal personal data).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.freetext import (
    DESTROYED,
    REVEALED,
    freetext_keys_destroyed,
    freetext_reveal_state,
    may_reveal_freetext,
)
from audit.models import AuditEntry
from governance.subjects.models import Identity, Profile
from governance.subjects.person import BasePersonSection, person_sections

VIEW_ENTRIES = "audit.view_auditentry"
PERSON_LIMIT = 50

# How an entry came in (additional_data["via"]) in words; unknown ones are shown as they are.
VIA_LABELS = {
    "admin": _("Admin"), "admin:list": _("Admin list"), "admin:change": _("Admin page"),
    "admin:person": _("Person page"), "admin:search": _("Admin search"), "admin:reveal": _("Admin reveal"),
    "admin:history": _("History page"), "admin:audit": _("Audit log"), "api": _("API"),
    "api:reveal": _("API reveal"), "portal": _("Portal"), "export": _("Export"),
}
# Names of what was read, in words (entry.fields); others are shown as they are.
FIELD_LABELS = {
    "attributes:masked": _("profile (masked)"), "identities:masked": _("identities (masked)"),
    "identities": _("identities"), "search:match": _("found by a search"), "reason": _("reason"),
}


def via_label(via: str) -> str:
    return str(VIA_LABELS.get(via, via)) if via else "—"


def field_label(name: str) -> str:
    if name.startswith("person:"):
        return gettext("person page: %(section)s") % {"section": name.split(":", 1)[1]}
    if name.startswith("search:"):
        return str(FIELD_LABELS.get(name) or gettext("search by %(kind)s") % {"kind": name.split(":", 1)[1]})
    if name in FIELD_LABELS:
        return str(FIELD_LABELS[name])
    try:
        return str(Profile._meta.get_field(name).verbose_name)
    except Exception:  # noqa: BLE001 - not a profile field: the name as recorded
        return name


def mask_address(address: str | None) -> str:
    """The client address with its host part hidden (network kept: office vs. elsewhere)."""
    if not address:
        return "—"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "•••"
    if ip.version == 4:
        return ".".join(address.split(".")[:3]) + ".•••"
    return str(ipaddress.ip_network(f"{ip}/48", strict=False).network_address).rstrip(":") + "::•••"


def entries_of_person(profile: Profile) -> QuerySet[AuditEntry]:
    """Entries about this person: their profile (reads, denied attempts, changes, searches that
    found them) and their identities."""
    profile_type = ContentType.objects.get_for_model(Profile)
    identity_type = ContentType.objects.get_for_model(Identity)
    identity_ids = [str(pk) for pk in Identity.objects.filter(profile=profile).values_list("pk", flat=True)]
    match = Q(content_type=profile_type, object_pk=str(profile.pk))
    if identity_ids:
        match |= Q(content_type=identity_type, object_pk__in=identity_ids)
    return AuditEntry.objects.filter(match)


def reasons_revealed(*, user, entries: list[AuditEntry], request, via: str) -> tuple[dict[int, str], set[int]]:
    """The full text of the entries' sealed reasons (recorded as a read), and the entries whose
    reason key is destroyed (the person was erased: only the masked text is left)."""
    sealed = [e for e in entries if (e.additional_data or {}).get("reason_enc")]
    destroyed_keys = freetext_keys_destroyed(e.additional_data["reason_enc"] for e in sealed)
    destroyed = {e.pk for e in sealed if str(e.additional_data["reason_enc"].get("k")) in destroyed_keys}
    full: dict[int, str] = {}
    if not may_reveal_freetext(user):
        return full, destroyed
    for entry in sealed:
        if entry.pk in destroyed:
            continue
        text, state = freetext_reveal_state(entry.additional_data["reason_enc"])
        if state == REVEALED:
            full[entry.pk] = text
        elif state == DESTROYED:
            destroyed.add(entry.pk)
    if full:
        from audit.services import access_record_many

        access_record_many(actor=user, objs=[e for e in entries if e.pk in full], fields=["reason"],
                           reason="audit log: reasons revealed", request=request, via=via)
    return full, destroyed


def entry_row(entry: AuditEntry, *, user, full_reasons: dict[int, str] | None = None) -> dict[str, Any]:
    data = entry.additional_data or {}
    may_see_address = may_reveal_freetext(user)
    return {
        "entry": entry,
        "seq": entry.seq,
        "at": entry.timestamp,
        "actor": entry.actor_email or (f"user {entry.actor_id}" if entry.actor_id else gettext("system")),
        "action": capfirst(entry.get_action_display()),
        "object": entry.object_repr,
        "fields": ", ".join(field_label(f) for f in (entry.fields or [])) or "—",
        "outcome": entry.get_outcome_display(),
        "denied": entry.outcome == "denied",
        "reason": (full_reasons or {}).get(entry.pk) or entry.reason or "",
        "revealed": entry.pk in (full_reasons or {}),
        "via": via_label(str(data.get("via") or data.get("event") or "")),
        "address": (entry.remote_addr or "—") if may_see_address else mask_address(entry.remote_addr),
        "url": reverse("admin:audit_auditentry_change", args=[entry.pk]),
    }


@person_sections.register
class AccessLogSection(BasePersonSection):
    """Who accessed this person's data when: reads, denied attempts, changes, searches."""

    identifier = "access_log"
    order = 90
    title = _("Who accessed this person's data")
    template = "oversight/person/access_log.html"

    def build(self, *, user, profile):
        if not user.has_perm(VIEW_ENTRIES):
            return None
        entries = list(entries_of_person(profile).select_related("content_type").order_by("-seq")[:PERSON_LIMIT])
        return {
            "rows": [entry_row(e, user=user) for e in entries],
            "limit": PERSON_LIMIT,
            "all_url": reverse("admin:audit_auditentry_changelist") + f"?person={profile.pk}",
        }
