"""The DPO dashboard on the admin home page: requests by due date, consent, PII, anomalies, figures.

Each panel reads one app; a panel whose app is not installed (or fails) is left out with a note,
so the admin home always renders.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from django.apps import apps
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from governance.charts import bar_chart, line_chart

logger = logging.getLogger(__name__)
DAYS = 30
AMBER_DAYS = 7


def sla_colour(due_at: dt.datetime | None, now: dt.datetime) -> str:
    """``overdue`` (red), ``soon`` (amber, due within a week) or ``ok`` (green)."""
    if due_at is None:
        return "ok"
    if due_at <= now:
        return "overdue"
    if due_at - now <= dt.timedelta(days=AMBER_DAYS):
        return "soon"
    return "ok"


def _panel(name: str, build):
    try:
        return build()
    except Exception:  # noqa: BLE001 - one broken panel must not take the admin home down
        logger.exception("dashboard panel %s failed", name)
        return {"error": gettext("This panel could not be loaded; see the server log.")}


def requests_panel(*, user, now: dt.datetime) -> dict | None:
    if not apps.is_installed("dsr"):
        return None
    from dsr.models import OPEN_STATUSES, DataSubjectRequest

    qs = DataSubjectRequest.objects.filter(status__in=OPEN_STATUSES)
    if not user.has_perm("dsr.view_datasubjectrequest"):
        return None
    if not user.has_perm("subjects.view_profile"):
        from governance.access.policy import workspaces_visible_to

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


def _days(now: dt.datetime) -> list[dt.date]:
    today = timezone.localtime(now).date()
    return [today - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS)]


def consent_panel(*, now: dt.datetime) -> dict | None:
    if not apps.is_installed("consent"):
        return None
    from consent.selectors import consent_rates_by_purpose

    days = _days(now)
    rows = consent_rates_by_purpose(since=now - dt.timedelta(days=DAYS), until=now, bucket="day")
    given: dict[str, dict] = defaultdict(dict)
    for row in rows:
        total = row["given"] + row["refused"] + row["withdrawn"]
        if total:
            given[row["purpose_code"]][row["date"]] = round(100 * row["given"] / total, 1)
    series = {code: [by_day.get(d) for d in days] for code, by_day in sorted(given.items())}
    events = sum(r["given"] + r["refused"] + r["withdrawn"] for r in rows)
    return {
        "chart": line_chart(
            title=gettext("Share of consent given per purpose (last 30 days)"),
            labels=[d.strftime("%m-%d") for d in days], series=series, percent=True,
        ) if series else None,
        "events": events,
    }


def pii_panel(*, now: dt.datetime) -> dict | None:
    if not apps.is_installed("governance.pii"):
        return None
    from governance.pii import selectors as pii

    days = _days(now)
    rows = pii.findings_counts(since=now - dt.timedelta(days=DAYS), until=now, bucket="day")
    per_type: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        per_type[row["entity_type"]][row["date"]] += row["count"]
    series = {kind: [by_day.get(d, 0) for d in days] for kind, by_day in sorted(per_type.items())}
    return {
        "chart": bar_chart(
            title=gettext("PII findings per day (last 30 days)"),
            labels=[d.strftime("%m-%d") for d in days], series=series, stacked=True,
        ) if series else None,
        "findings": sum(r["count"] for r in rows),
        "open_alerts": pii.open_alerts_count(),
    }


def anomalies_panel(*, user) -> dict | None:
    if not user.has_perm("audit.view_anomalyalert"):
        return None
    from audit.anomalies import alert_describe, alerts_list

    open_alerts = alerts_list(only_open=True)
    return {
        "rows": [{"id": a.pk, "text": alert_describe(a), "kind": a.get_kind_display(),
                  "created_at": a.created_at} for a in open_alerts[:10]],
        "open": open_alerts.count(),
        "can_acknowledge": user.has_perm("audit.change_anomalyalert"),
    }


def verification_panel(*, user) -> dict | None:
    """The last scheduled verification of the evidence chains: when, how much, intact or broken."""
    if not (user.has_perm("audit.view_verificationrun") or user.has_perm("audit.view_auditentry")):
        return None
    from audit.verification import last_run

    run = last_run()
    if run is None:
        return {"run": None}
    return {
        "run": {"id": run.pk, "at": run.finished_at, "checked": run.checked, "ok": run.ok, "full": run.full,
                "problems": run.problem_count, "chains": sorted(run.chains)},
        "examples": [f"{p['chain']}: {p['message']}" for p in run.problems[:5]],
    }


def month_figures(*, now: dt.datetime) -> list[tuple[str, int]]:
    from audit.models import AuditEntry
    from audit.models_exports import AuditExport

    start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    figures = []
    if apps.is_installed("dsr"):
        from dsr.models import DataSubjectRequest, RequestStatus

        received = DataSubjectRequest.objects.filter(received_at__gte=start)
        figures += [
            (gettext("Requests received"), received.count()),
            (gettext("Requests completed"), DataSubjectRequest.objects.filter(
                completed_at__gte=start, status=RequestStatus.COMPLETED).count()),
        ]
    if apps.is_installed("consent"):
        from consent.models import ConsentEvent

        figures.append((gettext("Consent events"), ConsentEvent.objects.filter(occurred_at__gte=start).count()))
    if apps.is_installed("governance.pii"):
        from governance.pii.models import ScanFinding

        figures.append((gettext("PII findings"), ScanFinding.objects.filter(created_at__gte=start).count()))
    figures += [
        (gettext("Profile reads logged"), AuditEntry.objects.filter(
            timestamp__gte=start, action=AuditEntry.Action.ACCESS).count()),
        (gettext("Denied attempts"), AuditEntry.objects.filter(timestamp__gte=start, outcome="denied").count()),
        (gettext("Audit exports"), AuditExport.objects.filter(created_at__gte=start).count()),
    ]
    return figures


def dashboard_context(*, user, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    return {
        "now": now,
        "requests": _panel("requests", lambda: requests_panel(user=user, now=now)),
        "consent": _panel("consent", lambda: consent_panel(now=now)),
        "pii": _panel("pii", lambda: pii_panel(now=now)),
        "anomalies": _panel("anomalies", lambda: anomalies_panel(user=user)),
        "verification": _panel("verification", lambda: verification_panel(user=user)),
        "figures": _panel("figures", lambda: month_figures(now=now)),
        "month": timezone.localtime(now).strftime("%Y-%m"),
        "can_export": user.has_perm("audit.export_audit") or user.has_perm("audit.view_auditentry"),
    }


TERMINAL = {"completed", "rejected"}


def request_panel(*, request, user) -> dict:
    """What the request page shows above its fields: progress, deadline colour, package, actions."""
    from dsr.models import RequestStatus
    from dsr.selectors import access_package_url, dsr_request_progress

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
        "package_url": access_package_url(request=request),
        "actions": actions,
        "progress_url": f"/api/v1/audit/requests/{request.pk}/progress",
    }
