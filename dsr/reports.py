"""DSR reports for the audit exports: the CCPA §7101 request register with the §7102 metrics.

Registered into the report registry from ``DsrConfig.ready()``; the exports, API and admin find it
there and never import this app.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from dsr.models import DataSubjectRequest, RequestStatus
from governance.subjects.models import Workspace
from oversight.exporters.base import Column, ReportTable
from oversight.reports import (
    VIEW_AUDIT,
    BaseReport,
    DateRangeFilters,
    ExportForbidden,
    iso_utc,
    keyset,
    register_report,
    report_meta,
    workspace_scope,
)


def _days_between(start: dt.datetime | None, end: dt.datetime | None) -> int | None:
    return (end - start).days if start and end else None


@register_report
class RequestRegisterReport(BaseReport):
    """CCPA §7101 request records, with the §7102 metrics as the summary."""

    identifier = "request_register"
    verbose_name = _("Request register (CCPA §7101 records, §7102 metrics)")
    description = _("Every data-subject request: date, nature, manner, response date and nature, "
                    "reason for denial; with the yearly metrics per request type.")
    requires_apps = ("dsr",)

    class Filters(DateRangeFilters):
        workspace = serializers.SlugField(required=False)
        request_type = serializers.CharField(required=False, max_length=24)
        status = serializers.CharField(required=False, max_length=24)

    columns = [
        Column("request_id", _("Request")), Column("workspace", _("Workspace")),
        Column("request_type", _("Type")), Column("jurisdiction", _("Jurisdiction")),
        Column("channel", _("Manner (channel)")), Column("received_at", _("Received (UTC)")),
        Column("acknowledged_at", _("Acknowledged")), Column("verified_at", _("Verified")),
        Column("due_at", _("Due")), Column("extended_at", _("Extended")),
        Column("completed_at", _("Responded")), Column("status", _("Response")),
        Column("denial_reason", _("Reason for denial")), Column("days_to_respond", _("Days to respond")),
    ]

    def authorize(self, params, *, user) -> None:
        super().authorize(params, user=user)
        if not (user.has_perm("dsr.view_datasubjectrequest") or user.has_perm(VIEW_AUDIT)):
            raise ExportForbidden()

    def queryset(self, params, *, user):
        qs = DataSubjectRequest.objects.all()
        if not user.has_perm(VIEW_AUDIT):
            qs = workspace_scope(qs, user)
        if params.get("workspace"):
            qs = qs.filter(workspace__slug=params["workspace"])
        for name in ("request_type", "status"):
            if params.get(name):
                qs = qs.filter(**{name: params[name]})
        if params.get("since"):
            qs = qs.filter(received_at__gte=params["since"])
        if params.get("until"):
            qs = qs.filter(received_at__lt=params["until"])
        return qs

    def count(self, params, *, user) -> int:
        return self.queryset(params, user=user).count()

    def rows(self, params, *, user) -> Iterator[tuple]:
        slugs = dict(Workspace.objects.values_list("pk", "slug"))
        fields = ("id", "workspace_id", "request_type", "jurisdiction", "channel", "received_at",
                  "acknowledged_at", "verified_at", "due_at", "extended_at", "completed_at", "status",
                  "rejection_reason")
        for (pk, ws, kind, region, channel, received, acked, verified, due, extended, completed,
             status_, reason) in keyset(self.queryset(params, user=user), fields, key="id"):
            yield (str(pk), slugs.get(ws, ""), kind, region, channel, iso_utc(received), iso_utc(acked),
                   iso_utc(verified), iso_utc(due), iso_utc(extended), iso_utc(completed), status_, reason,
                   _days_between(received, completed))

    def metrics(self, params, *, user) -> list[tuple[str, str]]:
        """§7102: per type, received / complied with in whole or part / denied, median days."""
        from statistics import median


        per_type: dict[str, dict] = {}
        for kind, status_, received, completed in self.queryset(params, user=user).values_list(
            "request_type", "status", "received_at", "completed_at"
        ).iterator(chunk_size=2000):
            entry = per_type.setdefault(kind, {"received": 0, "complied": 0, "denied": 0, "days": []})
            entry["received"] += 1
            if status_ == RequestStatus.COMPLETED:
                entry["complied"] += 1
                entry["days"].append((completed - received).total_seconds() / 86400 if completed else 0)
            elif status_ == RequestStatus.REJECTED:
                entry["denied"] += 1
        out = []
        for kind, e in sorted(per_type.items()):
            med = f"{median(e['days']):.1f}" if e["days"] else "—"
            out.append((kind, gettext("received %(r)d, complied %(c)d, denied %(d)d, median days %(m)s")
                        % {"r": e["received"], "c": e["complied"], "d": e["denied"], "m": med}))
        return out

    def table(self, params, *, user) -> ReportTable:
        return ReportTable(
            title=gettext("Request register"), columns=self.columns, rows=self.rows(params, user=user),
            meta=report_meta(params), summary=self.metrics(params, user=user),
            notes=[gettext("Records are kept for 24 months (CCPA §7101).")],
        )


