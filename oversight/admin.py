"""Admin for audit exports and access anomalies, and the DPO dashboard as the admin home page."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from audit.models_exports import AnomalyAlert, AnomalyRule, AuditExport, ExportStatus
from audit.models_verification import VerificationRun
from governance.admin_base import RecordAdmin
from governance.api.errors import DomainError
from oversight.exporters import exporter_get, exporters_all
from oversight.exporters.services import (
    audit_export_create,
    audit_export_download,
    audit_export_enqueue,
    audit_export_stream,
    download_name,
    export_visible,
)
from oversight.reports import EXPORT_AUDIT, VIEW_AUDIT, reports_all

# The DPO's dashboard replaces the admin's app list as the home page (the app list stays below it).
admin.site.index_template = "admin/mamoru_dashboard.html"


def may_export(user) -> bool:
    return bool(user.is_active and (user.has_perm(EXPORT_AUDIT) or user.has_perm(VIEW_AUDIT)))


@admin.register(AuditExport)
class AuditExportAdmin(admin.ModelAdmin):
    list_display = ("__str__", "report", "format", "status", "progress", "created_by", "created_at", "expires_at")
    list_filter = ("report", "format", "status")
    readonly_fields = [f.name for f in AuditExport._meta.fields] + ["progress", "download"]
    change_form_template = "admin/audit/auditexport/change_form.html"
    change_list_template = "admin/audit/auditexport/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # exports are records of who exported what; files expire on their own

    def has_module_permission(self, request):
        return may_export(request.user)

    def has_view_permission(self, request, obj=None):
        if obj is not None:
            return export_visible(export=obj, user=request.user)
        return may_export(request.user)

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("created_by")
        if request.user.has_perm("audit.view_auditexport"):
            return qs
        return qs.filter(created_by=request.user)

    @admin.display(description=_("progress"))
    def progress(self, obj: AuditExport):
        return format_html(
            '<progress max="100" value="{}" aria-label="{}">{}%</progress> {}%',
            obj.percent, _("Export progress"), obj.percent, obj.percent,
        )

    @admin.display(description=_("download"))
    def download(self, obj: AuditExport):
        if obj.status != ExportStatus.DONE or obj.streamed or not obj.file_name:
            return "—"
        url = reverse("admin:audit_auditexport_download", args=[obj.pk])
        return format_html('<a href="{}" class="button">{}</a>', url, _("Download"))

    def get_urls(self):
        urls = [
            path("new/", self.admin_site.admin_view(self.new_export_view), name="audit_auditexport_new"),
            path("<uuid:export_id>/download/", self.admin_site.admin_view(self.download_view),
                 name="audit_auditexport_download"),
        ]
        return urls + super().get_urls()

    def new_export_view(self, request: HttpRequest):
        """Pick a report, its filters and a format; download now or build in the background."""
        if not may_export(request.user):
            raise PermissionDenied
        reports = [r for r in reports_all() if r.is_available()]
        chosen = next((r for r in reports if r.identifier == request.GET.get("report")), reports[0])
        if request.method == "POST":
            chosen = next((r for r in reports if r.identifier == request.POST.get("report")), chosen)
            filters = {
                name: request.POST.get(name, "").strip()
                for name in chosen.Filters().fields if name != "until_seq"
            }
            fmt = request.POST.get("format", "csv")
            try:
                if request.POST.get("mode") == "background":
                    export = audit_export_enqueue(
                        user=request.user, report=chosen.identifier, fmt=fmt, filters=filters,
                        request=request,
                    )
                    messages.success(request, _("The export is being prepared."))
                    return HttpResponseRedirect(
                        reverse("admin:audit_auditexport_change", args=[export.pk])
                    )
                export = audit_export_create(
                    user=request.user, report=chosen.identifier, fmt=fmt, filters=filters,
                    streamed=True, request=request,
                )
            except DomainError as exc:
                errors = exc.extra.get("errors") if exc.extra else None
                messages.error(request, f"{exc.detail} {errors or ''}".strip())
            else:
                response = StreamingHttpResponse(
                    audit_export_stream(export=export, user=request.user),
                    content_type=exporter_get(fmt).media_type,
                )
                response["Content-Disposition"] = f'attachment; filename="{download_name(export)}"'
                response["Cache-Control"] = "no-store"
                return response
        fields = [
            {"name": name, "label": name.replace("_", " "), "help": str(field.help_text or ""),
             "value": request.POST.get(name, "") if request.method == "POST" else "",
             "choices": list(getattr(field, "choices", {}) or {})}
            for name, field in chosen.Filters().fields.items() if name != "until_seq"
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("New audit export"),
            "opts": self.model._meta,
            "reports": reports,
            "chosen": chosen,
            "fields": fields,
            "formats": [(key, cls.verbose_name) for key, cls in exporters_all().items()],
        }
        return TemplateResponse(request, "admin/audit/auditexport/new.html", context)

    def download_view(self, request: HttpRequest, export_id):
        export = get_object_or_404(AuditExport, pk=export_id)
        if not export_visible(export=export, user=request.user):
            raise PermissionDenied
        try:
            chunks = audit_export_download(export=export, user=request.user, request=request)
        except DomainError as exc:
            messages.error(request, exc.detail)
            return HttpResponseRedirect(reverse("admin:audit_auditexport_change", args=[export.pk]))
        response = StreamingHttpResponse(chunks, content_type=exporter_get(export.format).media_type)
        response["Content-Disposition"] = f'attachment; filename="{download_name(export)}"'
        response["Cache-Control"] = "no-store"
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        export = self.get_object(request, object_id)
        running = export is not None and export.status in (ExportStatus.PENDING, ExportStatus.RUNNING)
        extra = {**(extra_context or {}), "refresh_seconds": 2 if running else None}
        return super().change_view(request, object_id, form_url, extra_context=extra)


@admin.register(AnomalyRule)
class AnomalyRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "threshold", "window_minutes", "work_start_hour",
                    "work_end_hour", "timezone")
    list_editable = ("enabled", "threshold", "window_minutes")
    list_filter = ("kind", "enabled")


@admin.register(AnomalyAlert)
class AnomalyAlertAdmin(RecordAdmin):
    list_display = ("created_at", "kind", "actor_label", "count", "threshold", "window_start",
                    "acknowledged_at", "acknowledged_by")
    list_filter = ("kind", ("acknowledged_at", admin.EmptyFieldListFilter))
    readonly_fields = [f.name for f in AnomalyAlert._meta.fields]
    actions = ["acknowledge"]

    @admin.action(description=_("Acknowledge the selected alerts"), permissions=["change"])
    def acknowledge(self, request, queryset):
        from oversight.anomalies import alert_acknowledge

        done = 0
        for alert in queryset.filter(acknowledged_at__isnull=True):
            alert_acknowledge(alert=alert, actor=request.user, note="acknowledged in the admin",
                              request=request)
            done += 1
        messages.success(request, _("%(n)d alert(s) acknowledged.") % {"n": done})


@admin.register(VerificationRun)
class VerificationRunAdmin(admin.ModelAdmin):
    """Runs of the scheduled chain verification: read-only records."""

    list_display = ("finished_at", "ok", "full", "checked", "problem_count", "notified_at")
    list_filter = ("ok", "full")
    readonly_fields = [f.name for f in VerificationRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
