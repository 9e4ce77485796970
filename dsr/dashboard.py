"""The DSR's parts of the admin: the dashboard's working lists of open requests, and the panel
above a request's fields (progress, deadline colour, package, actions)."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from dsr.models import OPEN_STATUSES, DataSubjectRequest, RequestStatus
from dsr.selectors import access_package_url, dsr_request_progress
from governance.access.policy import workspaces_visible_to
from oversight.dashboard import AMBER_DAYS, BasePanel, panels, sla_colour

TERMINAL = {"completed", "rejected"}


LIST_ROWS = 8


def _visible_requests(user):
    qs = DataSubjectRequest.objects.all()
    if not user.has_perm("subjects.view_profile"):
        qs = qs.filter(workspace__in=workspaces_visible_to(user))
    return qs


def _row(req: DataSubjectRequest, now: dt.datetime) -> dict:
    return {
        "id": req.pk, "short": str(req.pk)[:8], "type": req.get_request_type_display(),
        "status": req.get_status_display(), "workspace": req.workspace.name, "due_at": req.due_at,
        "sla": "paused" if req.paused_at else sla_colour(req.due_at, now),
        "assignee": (req.assignee.get_full_name() or req.assignee.username) if req.assignee_id else "",
        "attention": req.attention_reason[:140] if req.status == RequestStatus.NEEDS_ATTENTION else "",
    }


@panels.register
class RequestsPanel(BasePanel):
    """Working lists of open requests: my queue, overdue, due this week, needs attention.

    Each list shows its first rows with SLA colours and links to the whole list in the admin
    (the same filters: ``?queue=mine``, ``?due=overdue``, ``?due=week``, ``?status=needs_attention``).
    Only for staff who may view requests, over the workspaces they may see.
    """

    identifier = "requests"
    order = 10
    template = "dsr/panels/requests.html"

    def build(self, *, user, now: dt.datetime) -> dict | None:
        if not user.has_perm("dsr.view_datasubjectrequest"):
            return None
        open_ = _visible_requests(user).filter(status__in=OPEN_STATUSES).select_related("workspace", "assignee")
        running = open_.filter(paused_at=None)
        week = now + dt.timedelta(days=AMBER_DAYS)
        changelist = reverse("admin:dsr_datasubjectrequest_changelist")
        lists = [
            ("mine", _("My queue"), open_.filter(assignee=user), "?queue=mine",
             _("Nothing is assigned to you.")),
            ("overdue", _("Overdue"), running.filter(due_at__lte=now), "?due=overdue", _("Nothing is overdue.")),
            ("week", _("Due this week"), running.filter(due_at__gt=now, due_at__lte=week), "?due=week",
             _("Nothing is due this week.")),
            ("attention", _("Needs attention"), open_.filter(status=RequestStatus.NEEDS_ATTENTION),
             "?status__exact=needs_attention", _("Nothing needs attention.")),
        ]
        out = []
        for key, title, qs, query, empty in lists:
            count = qs.count()
            out.append({"key": key, "title": title, "count": count, "url": changelist + query, "empty": empty,
                        "rows": [_row(r, now) for r in qs.order_by("due_at")[:LIST_ROWS]] if count else []})
        return {
            "lists": out,
            "open": open_.count(),
            "paused": open_.exclude(paused_at=None).count(),
            "all_url": changelist + "?status__in=" + ",".join(sorted(OPEN_STATUSES)),
        }

    def figures(self, *, user, start: dt.datetime) -> list[tuple[str, int]]:
        if not user.has_perm("dsr.view_datasubjectrequest"):
            return []
        qs = _visible_requests(user)
        return [
            (gettext("Requests received"), qs.filter(received_at__gte=start).count()),
            (gettext("Requests completed"), qs.filter(completed_at__gte=start, status=RequestStatus.COMPLETED).count()),
        ]


def request_panel(*, request, user, base_url: str = "") -> dict:
    """What the request page shows above its fields: progress, deadline colour, package, actions."""
    progress = dsr_request_progress(request=request)
    status = request.status
    can_change = user.has_perm("dsr.change_datasubjectrequest")
    # (name, label, method, url): POST actions run at once and come back here; deny and extend
    # open a confirmation page with the e-mail's preview.
    actions = []
    act = lambda name: reverse("admin:dsr_datasubjectrequest_act", args=[request.pk, name])  # noqa: E731
    if can_change:
        if status == RequestStatus.AWAITING_APPROVAL:
            actions.append(("approve", _("Approve"), "post", act("approve")))
        if status in OPEN_STATUSES and status != RequestStatus.RUNNING:
            actions.append(("deny", _("Deny with reason…"), "get",
                            reverse("admin:dsr_datasubjectrequest_deny", args=[request.pk])))
        if status not in TERMINAL and not request.extended_at and request.due_at > timezone.now():
            actions.append(("extend", _("Extend the deadline…"), "get",
                            reverse("admin:dsr_datasubjectrequest_extend", args=[request.pk])))
        if status == RequestStatus.NEEDS_ATTENTION:
            actions.append(("retry", _("Retry failed nodes"), "post", act("retry")))
    return {
        "progress": progress,
        "status": status,
        "status_label": request.get_status_display(),
        "running": status not in TERMINAL and status != RequestStatus.AWAITING_APPROVAL,
        "sla": ("paused" if request.paused_at else sla_colour(request.due_at, timezone.now()))
        if status not in TERMINAL else "ok",
        "package_url": access_package_url(request=request, base_url=base_url),
        "actions": actions,
        "progress_url": f"/api/v1/audit/requests/{request.pk}/progress",
    }
