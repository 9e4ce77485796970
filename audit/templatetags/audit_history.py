"""``{% audit_history object %}``: the configuration history of an admin object (its "History" page).

Lists the change entries django-auditlog wrote for the object (before → after per field, many-to-many
additions and removals, actor, reason) and the reads that gave a reason (reveals of a profile). Reasons are shown masked; a user with the reveal permission
may ask for the full text (``?reveal_reasons=1``), and that read is itself recorded. A reason whose
full text was sealed under the person's data key shows a note once that key is shredded (erasure):
the masked text is all that is left.
"""

from __future__ import annotations

from django import template
from django.contrib.contenttypes.models import ContentType

from audit.freetext import (
    DESTROYED,
    REVEALED,
    freetext_keys_destroyed,
    freetext_reveal_state,
    may_reveal_freetext,
)
from audit.models import AuditEntry

register = template.Library()
LIMIT = 200


def _changes(entry: AuditEntry) -> list[dict]:
    rows = []
    for name, change in sorted((entry.changes_dict or {}).items()):
        if isinstance(change, dict) and change.get("type") == "m2m":
            rows.append({"field": name, "m2m": change.get("operation", ""), "objects": change.get("objects", [])})
        elif isinstance(change, list | tuple) and len(change) == 2:
            rows.append({"field": name, "before": change[0], "after": change[1]})
    return rows


@register.inclusion_tag("admin/audit/history_entries.html", takes_context=True)
def audit_history(context, obj) -> dict:
    request = context["request"]
    entries = list(
        AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk))
        .exclude(action=AuditEntry.Action.ACCESS, reason="")  # changes, and reads with a reason (reveals)
        .select_related("actor").order_by("-seq")[:LIMIT]
    )
    sealed = [e for e in entries if (e.additional_data or {}).get("reason_enc")]
    destroyed_keys = freetext_keys_destroyed(e.additional_data["reason_enc"] for e in sealed)
    destroyed = {e.pk for e in sealed if str(e.additional_data["reason_enc"].get("k")) in destroyed_keys}
    readable = [e for e in sealed if e.pk not in destroyed]
    may_reveal = bool(readable) and may_reveal_freetext(request.user)
    reveal = may_reveal and request.GET.get("reveal_reasons") == "1"
    full = {}
    if reveal:
        from audit.services import access_record_many

        for entry in readable:
            text, state = freetext_reveal_state(entry.additional_data["reason_enc"])
            if state == REVEALED:
                full[entry.pk] = text
            elif state == DESTROYED:  # shredded since the query above
                destroyed.add(entry.pk)
        revealed = [e for e in readable if e.pk in full]
        if revealed:
            access_record_many(actor=request.user, objs=revealed, fields=["reason"], reason="configuration history",
                               request=request, via="admin:history")
    rows = [
        {"entry": e, "action": e.get_action_display(), "actor": e.actor_email or (e.actor and str(e.actor)) or "",
         "changes": _changes(e), "reason": full.get(e.pk) or e.reason, "revealed": e.pk in full,
         "destroyed": e.pk in destroyed}
        for e in entries
    ]
    return {"rows": rows, "may_reveal": may_reveal and not reveal, "limit": LIMIT}
