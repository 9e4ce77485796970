"""What the request page shows to the team working it: why it needs attention, the clock, the
assignee, internal notes and the messages to and from the person (free text masked unless the
viewer may reveal it and asks to, each such reading recorded in the audit chain)."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.freetext import REVEALED, freetext_reveal_state, may_reveal_freetext
from dsr import deadlines
from dsr.models import (
    OPEN_STATUSES,
    DataSubjectRequest,
    InformationReason,
    MessageDirection,
    MessageKind,
    RequestStatus,
)
from governance.access.masking import mask_value

ACTIONS = {
    "deny": {
        "title": _("Deny the request"),
        "intro": _("Say why the request is denied. The person receives the e-mail below, with their right "
                   "to complain (GDPR Art. 12(4)). This closes the request and destroys its data."),
        "confirm": _("Deny and send"),
    },
    "extend": {
        "title": _("Extend the deadline"),
        "intro": _("Say why more time is needed. The person receives the e-mail below; the deadline can be "
                   "extended once, before it has passed."),
        "confirm": _("Extend and send"),
    },
    "message": {
        "title": _("Write to the person who asked"),
        "intro": _("The message is e-mailed in the person's language with a link to answer on the privacy "
                   "portal. “We need more information” pauses the deadline where the law allows; "
                   "the preview says whether it does."),
        "confirm": _("Send"),
    },
}


def _requester_masked(request: DataSubjectRequest) -> str:
    try:
        email = request.email
    except Exception:  # noqa: BLE001 - the data key is destroyed once the request is closed
        return gettext("(erased with the request's data)")
    return mask_value(email, kind="email") or ""


def _language_label(request: DataSubjectRequest) -> str:
    return gettext("Japanese") if (request.locale or "").startswith("ja") else gettext("English")


def pause_rules(jurisdiction: str) -> list[dict]:
    """For the message form: which questions stop the clock here, and on what basis."""
    return [{"reason": str(label), "pauses": deadlines.clock_pauses(jurisdiction=jurisdiction, reason=value)}
            for value, label in InformationReason.choices]


def request_workbench(*, request: DataSubjectRequest, user, http_request=None, reveal: bool = False) -> dict:
    """The request page's team panel. ``reveal``: show notes and messages in full, when the viewer
    may (one audit entry records that they read them)."""
    notes = list(request.notes.select_related("author"))
    msgs = list(request.messages.select_related("author"))
    sealed = [n.text_enc for n in notes if n.text_enc] + [m.body_enc for m in msgs if m.body_enc]
    may_reveal = bool(sealed) and may_reveal_freetext(user)
    full: dict[int, str] = {}
    if reveal and may_reveal:
        for row in [*notes, *msgs]:
            text, state = freetext_reveal_state(getattr(row, "text_enc", None) or getattr(row, "body_enc", None))
            if state == REVEALED:
                full[id(row)] = text
        if full:
            from audit.services import access_record

            access_record(actor=user, obj=request, fields=["notes", "messages"], reason="notes and messages read "
                          "in full on the request page", request=http_request, via="admin:dsr-request")
    is_open = request.status in OPEN_STATUSES
    can_change = user.has_perm("dsr.change_datasubjectrequest")
    now = timezone.now()
    pk = request.pk
    return {
        "attention": request.attention_reason if (request.attention_reason or
                                                  request.status == RequestStatus.NEEDS_ATTENTION) else "",
        "needs_attention": request.status == RequestStatus.NEEDS_ATTENTION,
        "requester": _requester_masked(request),
        "language": _language_label(request),
        "assignee": request.assignee,
        "mine": request.assignee_id == user.pk,
        "paused": request.paused_at is not None,
        "paused_at": request.paused_at,
        "pause_reason": InformationReason(request.pause_reason).label if request.pause_reason in
        InformationReason.values else "",
        "pause_basis": deadlines.pause_basis(request.jurisdiction),
        "pause_days": (now - request.paused_at).days if request.paused_at else 0,
        "pause_rules": pause_rules(request.jurisdiction),
        "notes": [{"id": n.pk, "author": _who(n.author), "at": n.created_at, "text": full.get(id(n), n.text),
                   "revealed": id(n) in full, "masked": bool(n.text_enc) and id(n) not in full} for n in notes],
        "messages": [{
            "id": m.pk, "inbound": m.direction == MessageDirection.INBOUND,
            "direction": m.get_direction_display(), "kind": m.get_kind_display(),
            "more_information": m.kind == MessageKind.MORE_INFORMATION,
            "info_reason": m.get_info_reason_display() if m.info_reason else "",
            "author": _who(m.author), "at": m.created_at, "body": full.get(id(m), m.body),
            "revealed": id(m) in full, "masked": bool(m.body_enc) and id(m) not in full,
            "paused": m.paused_clock, "resumed": m.resumed_clock, "delivered": m.delivered,
        } for m in msgs],
        "may_reveal": may_reveal and not full,
        "revealed": bool(full),
        "can_change": can_change,
        "can_write": can_change and is_open and request.status != RequestStatus.PENDING_VERIFICATION,
        "can_deny": can_change and is_open and request.status != RequestStatus.RUNNING,
        "can_extend": can_change and is_open and request.extended_at is None and request.due_at > now,
        "urls": {
            "assign": reverse("admin:dsr_datasubjectrequest_assign", args=[pk]),
            "note": reverse("admin:dsr_datasubjectrequest_note", args=[pk]),
            "message": reverse("admin:dsr_datasubjectrequest_message", args=[pk]),
            "deny": reverse("admin:dsr_datasubjectrequest_deny", args=[pk]),
            "extend": reverse("admin:dsr_datasubjectrequest_extend", args=[pk]),
        },
    }


def _who(user) -> str:
    if user is None:
        return gettext("the person who asked")
    return user.get_full_name() or user.username


def confirm_page_context(*, request: DataSubjectRequest, action: str) -> dict:
    texts = ACTIONS[action]
    return {"title": texts["title"], "intro": texts["intro"], "confirm_label": texts["confirm"],
            "requester": _requester_masked(request), "language": _language_label(request),
            "pause_rules": pause_rules(request.jurisdiction) if action == "message" else [],
            "pause_basis": deadlines.pause_basis(request.jurisdiction)}
