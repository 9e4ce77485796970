"""The DSR's parts of the admin: the dashboard panel of open requests by due date, and the panel
above a request's fields (progress, deadline colour, package, actions)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from dsr.models import OPEN_STATUSES, DataSubjectRequest, RequestStatus
from dsr.selectors import access_package_url, dsr_request_progress
from governance.access.policy import workspaces_visible_to
from oversight.dashboard import AMBER_DAYS, BasePanel, panels, sla_colour

TERMINAL = {"completed", "rejected"}


@panels.register
class RequestsPanel(BasePanel):
    identifier = "requests"
    order = 10
    template = "dsr/panels/requests.html"

    def build(self, *, user, now: dt.datetime) -> dict | None:
        if not user.has_perm("dsr.view_datasubjectrequest"):
            return None
        qs = DataSubjectRequest.objects.filter(status__in=OPEN_STATUSES)
        if not user.has_perm("subjects.view_profile"):
            qs = qs.filter(workspace__in=workspaces_visible_to(user))
        rows = []
        for req in qs.select_related("workspace").order_by("due_at")[:15]:
            rows.append({
                "id": req.pk, "short": str(req.pk)[:8], "type": req.get_request_type_display(),
                "status": req.get_status_display(), "workspace": req.workspace.name, "due_at": req.due_at,
                "sla": sla_colour(req.due_at, now),
            })
        return {
            "rows": rows,
            "open": qs.count(),
            "overdue": qs.filter(due_at__lte=now).count(),
            "soon": qs.filter(due_at__gt=now, due_at__lte=now + dt.timedelta(days=AMBER_DAYS)).count(),
        }

    def figures(self, *, user, start: dt.datetime) -> list[tuple[str, int]]:
        if not user.has_perm("dsr.view_datasubjectrequest"):
            return []
        qs = DataSubjectRequest.objects.all()
        if not user.has_perm("subjects.view_profile"):
            qs = qs.filter(workspace__in=workspaces_visible_to(user))
        return [
            (gettext("Requests received"), qs.filter(received_at__gte=start).count()),
            (gettext("Requests completed"), qs.filter(completed_at__gte=start, status=RequestStatus.COMPLETED).count()),
        ]


def request_panel(*, request, user, base_url: str = "") -> dict:
    """What the request page shows above its fields: progress, deadline colour, package, actions."""
    progress = dsr_request_progress(request=request)
    status = request.status
    can_change = user.has_perm("dsr.change_datasubjectrequest")
    actions = []
    if can_change:
        if status == RequestStatus.AWAITING_APPROVAL:
            actions += [("approve", _("Approve")), ("deny", _("Deny with reason"))]
        if status not in TERMINAL and not request.extended_at:
            actions.append(("extend", _("Extend the deadline")))
        if status == RequestStatus.NEEDS_ATTENTION or progress["failed"]:
            actions.append(("retry", _("Retry failed nodes")))
    return {
        "progress": progress,
        "status": status,
        "status_label": request.get_status_display(),
        "running": status not in TERMINAL and status != RequestStatus.AWAITING_APPROVAL,
        "sla": sla_colour(request.due_at, timezone.now()) if status not in TERMINAL else "ok",
        "package_url": access_package_url(request=request, base_url=base_url),
        "actions": actions,
        "progress_url": f"/api/v1/audit/requests/{request.pk}/progress",
    }
