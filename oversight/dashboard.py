"""The DPO dashboard on the admin home page: key figures and one panel per registered source.

Apps contribute panels by registering a :class:`BasePanel` subclass into :data:`panels` from their
``AppConfig.ready()`` (DSR: requests by due date; consent: rates per purpose; PII: findings trend).
This module imports none of them. A panel that does not apply to the user returns ``None`` and is
left out; a panel that fails is shown with a note, so the admin home always renders.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext

from governance.registry import Registry

logger = logging.getLogger(__name__)
DAYS = 30
AMBER_DAYS = 7


class BasePanel:
    """One dashboard panel.

    ``identifier`` names it; ``order`` places it (lower first); ``template`` renders it with the
    dict :meth:`build` returns as ``data``. :meth:`figures` adds lines to the month's key figures.
    """

    identifier: str = ""
    order: int = 100
    template: str = ""

    def build(self, *, user, now: dt.datetime) -> dict[str, Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement build(user=..., now=...)")

    def figures(self, *, user, start: dt.datetime) -> list[tuple[str, int]]:
        """Lines for the month's key figures, counted over what ``user`` may see ([] for none)."""
        return []


panels: Registry[BasePanel] = Registry("dashboard panel", base=BasePanel, instantiate=True)


def sla_colour(due_at: dt.datetime | None, now: dt.datetime) -> str:
    """``overdue`` (red), ``soon`` (amber, due within a week) or ``ok`` (green)."""
    if due_at is None:
        return "ok"
    if due_at <= now:
        return "overdue"
    if due_at - now <= dt.timedelta(days=AMBER_DAYS):
        return "soon"
    return "ok"


def last_days(now: dt.datetime) -> list[dt.date]:
    """The dashboard's chart window: the last :data:`DAYS` days, oldest first."""
    today = timezone.localtime(now).date()
    return [today - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS)]


def _guarded(name: str, build):
    try:
        return build()
    except Exception:  # noqa: BLE001 - one broken panel must not take the admin home down
        logger.exception("dashboard panel %s failed", name)
        return {"error": gettext("This panel could not be loaded; see the server log.")}


@panels.register
class AnomaliesPanel(BasePanel):
    identifier = "anomalies"
    order = 20
    template = "oversight/panels/anomalies.html"

    def build(self, *, user, now):
        if not user.has_perm("audit.view_anomalyalert"):
            return None
        from oversight.anomalies import alert_describe, alerts_list

        open_alerts = alerts_list(only_open=True)
        return {
            "rows": [{"id": a.pk, "text": alert_describe(a), "kind": a.get_kind_display(),
                      "created_at": a.created_at} for a in open_alerts[:10]],
            "open": open_alerts.count(),
            "can_acknowledge": user.has_perm("audit.change_anomalyalert"),
        }


@panels.register
class VerificationPanel(BasePanel):
    """The last scheduled verification of the evidence chains: when, how much, intact or broken."""

    identifier = "verification"
    order = 25
    template = "oversight/panels/verification.html"

    def build(self, *, user, now):
        if not (user.has_perm("audit.view_verificationrun") or user.has_perm("audit.view_auditentry")):
            return None
        from audit.verification import last_run

        run = last_run()
        if run is None:
            return {"run": None}
        return {
            "run": {"id": run.pk, "at": run.finished_at, "checked": run.checked, "ok": run.ok,
                    "full": run.full, "problems": run.problem_count, "chains": sorted(run.chains)},
            "examples": [f"{p['chain']}: {p['message']}" for p in run.problems[:5]],
        }


def month_figures(*, user, now: dt.datetime) -> list[tuple[str, int]]:
    from audit.models import AuditEntry
    from audit.models_exports import AuditExport

    start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    figures: list[tuple[str, int]] = []
    for panel in sorted(panels.values(), key=lambda p: p.order):
        figures += panel.figures(user=user, start=start)
    if user.has_perm("audit.view_auditentry"):
        figures += [
            (gettext("Profile reads logged"), AuditEntry.objects.filter(
                timestamp__gte=start, action=AuditEntry.Action.ACCESS).count()),
            (gettext("Denied attempts"), AuditEntry.objects.filter(timestamp__gte=start, outcome="denied").count()),
        ]
    if user.has_perm("audit.view_auditexport"):
        figures.append((gettext("Audit exports"), AuditExport.objects.filter(created_at__gte=start).count()))
    return figures


def dashboard_context(*, user, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    shown = []
    for panel in sorted(panels.values(), key=lambda p: (p.order, p.identifier)):
        data = _guarded(panel.identifier, lambda panel=panel: panel.build(user=user, now=now))
        if data is not None:
            shown.append({"identifier": panel.identifier, "template": panel.template, "data": data})
    return {
        "now": now,
        "panels": shown,
        "figures": _guarded("figures", lambda: month_figures(user=user, now=now)),
        "month": timezone.localtime(now).strftime("%Y-%m"),
        "can_export": user.has_perm("audit.export_audit") or user.has_perm("audit.view_auditentry"),
    }
