"""Findings with charts over time, unexpected-PII alerts, store discovery runs and suggestions."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from governance.admin_base import RecordAdmin
from governance.charts import bar_chart, line_chart
from governance.pii.discovery import url_masked
from governance.pii.models import (
    ColumnSuggestion,
    PiiAlert,
    ScanFinding,
    StoreScan,
    StoreScanStatus,
    SuggestionStatus,
)
from governance.pii.selectors import findings_counts, findings_totals, open_alerts_count
from governance.pii.services import (
    SuggestionDecided,
    alert_acknowledge,
    store_scan_submit,
    suggestion_decide,
)

CHART_DAYS = 30


def charts_context(days: int = CHART_DAYS, base=None, filtered: bool = False) -> dict:
    """Server-side SVG charts: findings per entity per day, and totals by field and source.

    ``base``: the admin's filtered findings, so that filtering by source, field or workspace
    shows that slice over time.
    """
    until = timezone.now()
    since = until - timedelta(days=days)
    rows = findings_counts(since=since, until=until, bucket="day", base=base)
    dates = [(timezone.localtime(since) + timedelta(days=i)).date() for i in range(days + 1)]
    series: dict[str, list[int]] = defaultdict(lambda: [0] * len(dates))
    index = {d: i for i, d in enumerate(dates)}
    for row in rows:
        if row["date"] in index:
            series[row["entity_type"]][index[row["date"]]] = row["count"]
    by_field = findings_totals(since=since, until=until, by="field_path", base=base)[:12]
    by_source = findings_totals(since=since, until=until, by="source", base=base)[:12]
    return {
        "chart_days": days,
        "chart_filtered": filtered,
        "open_alerts": open_alerts_count(),
        "chart_over_time": line_chart(
            title=str(_("Findings per day by entity")), labels=[d.isoformat() for d in dates],
            series=dict(sorted(series.items())),
        ),
        "chart_by_field": bar_chart(
            title=str(_("Findings by field")), labels=[r["field_path"] for r in by_field],
            series={str(_("findings")): [r["count"] for r in by_field]}, horizontal=True,
        ),
        "chart_by_source": bar_chart(
            title=str(_("Findings by source")), labels=[r["source"] for r in by_source],
            series={str(_("findings")): [r["count"] for r in by_source]}, horizontal=True,
        ),
    }


@admin.register(ScanFinding)
class ScanFindingAdmin(RecordAdmin):
    list_display = ("created_at", "entity_type", "field_path", "source", "channel", "score",
                    "recognizer", "expected", "workspace")
    list_filter = ("entity_type", "channel", "expected", "source", "workspace")
    search_fields = ("field_path", "source", "entity_type")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in ScanFinding._meta.fields]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        try:
            changelist = self.get_changelist_instance(request)
            base = changelist.get_queryset(request)
            filtered = changelist.has_filters and bool(changelist.get_filters_params())
        except Exception:  # noqa: BLE001 - bad filter parameters: Django's view shows the error
            base, filtered = None, False
        extra_context = {**(extra_context or {}), **charts_context(base=base, filtered=filtered)}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(PiiAlert)
class PiiAlertAdmin(RecordAdmin):
    list_display = ("__str__", "source", "workspace", "finding_count", "last_seen_at", "status",
                    "acknowledged_by")
    list_filter = ("status", "entity_type", "source", "workspace")
    readonly_fields = ("workspace", "source", "field_path", "entity_type", "finding_count",
                       "created_at", "last_seen_at", "status", "acknowledged_by", "acknowledged_at",
                       "note")
    actions = ["acknowledge"]

    @admin.action(description=_("Acknowledge selected alerts"), permissions=["change"])
    def acknowledge(self, request, queryset):
        count = 0
        for alert in queryset:
            alert_acknowledge(alert=alert, actor=request.user)
            count += 1
        self.message_user(request, _("%(n)d alert(s) acknowledged.") % {"n": count}, messages.SUCCESS)


class StoreScanForm(forms.ModelForm):
    url = forms.CharField(
        label=_("database URL"), widget=forms.PasswordInput(render_value=False),
        help_text=_("SQLAlchemy URL, e.g. postgresql+psycopg://reader:secret@db:5432/shop. "
                    "Stored encrypted."),
    )

    class Meta:
        model = StoreScan
        fields = ("name", "store_key", "sample_size")


class SuggestionInline(admin.TabularInline):
    model = ColumnSuggestion
    extra = 0
    can_delete = False
    fields = ("collection", "column", "data_category", "entity_type", "confidence", "matched",
              "sampled", "status")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StoreScan)
class StoreScanAdmin(admin.ModelAdmin):
    list_display = ("name", "store_key", "progress", "created_at", "requested_by")
    list_filter = ("status",)
    inlines = [SuggestionInline]
    actions = ["run_again"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = StoreScanForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "store_key", "url", "sample_size")
        return ("name", "store_key", "url_display", "sample_size", "progress", "error",
                "requested_by", "created_at", "started_at", "finished_at", "review")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return  # a run is not edited; start a new one instead
        obj.url = form.cleaned_data["url"]
        store_scan_submit(scan=obj, actor=request.user)

    def save_related(self, request, form, formsets, change):
        if change:
            return
        super().save_related(request, form, formsets, change)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) if obj is None else False

    @admin.display(description=_("database URL"))
    def url_display(self, obj: StoreScan) -> str:
        return url_masked(obj.url or "")

    @admin.display(description=_("progress"))
    def progress(self, obj: StoreScan) -> str:
        return render_to_string("admin/pii/storescan/progress.html", {
            "percent": obj.progress_percent, "done": obj.tables_done, "total": obj.tables_total,
            "status": obj.get_status_display(),
        })

    @admin.display(description=_("suggestions"))
    def review(self, obj: StoreScan) -> str:
        url = reverse("admin:pii_columnsuggestion_changelist") + f"?scan__id__exact={obj.pk}&status__exact=pending"
        pending = obj.suggestions.filter(status=SuggestionStatus.PENDING).count()
        return format_html('<a href="{}">{} {}</a>', url, pending, _("pending — review"))

    @admin.action(description=_("Run the selected scans again"), permissions=["add"])
    def run_again(self, request, queryset):
        for old in queryset:
            scan = StoreScan(name=old.name, store_key=old.store_key, sample_size=old.sample_size,
                             status=StoreScanStatus.QUEUED)
            scan.url = old.url
            store_scan_submit(scan=scan, actor=request.user)
        self.message_user(request, _("Queued."), messages.SUCCESS)


@admin.register(ColumnSuggestion)
class ColumnSuggestionAdmin(RecordAdmin):
    list_display = ("collection", "column", "data_category", "entity_type", "confidence",
                    "matched", "sampled", "status", "scan")
    list_filter = ("status", "data_category", "scan")
    readonly_fields = ("scan", "collection", "column", "entity_type", "data_category", "confidence",
                       "sampled", "matched", "status", "decided_by", "decided_at")
    actions = ["accept", "reject"]

    def _decide(self, request, queryset, accept: bool) -> None:
        done = skipped = 0
        for suggestion in queryset:
            try:
                suggestion_decide(suggestion=suggestion, accept=accept, actor=request.user)
                done += 1
            except SuggestionDecided:
                skipped += 1
        self.message_user(
            request, _("%(done)d decided, %(skipped)d already decided.") % {"done": done, "skipped": skipped},
            messages.SUCCESS,
        )

    @admin.action(description=_("Accept selected suggestions"), permissions=["change"])
    def accept(self, request, queryset):
        self._decide(request, queryset, True)

    @admin.action(description=_("Reject selected suggestions"), permissions=["change"])
    def reject(self, request, queryset):
        self._decide(request, queryset, False)
