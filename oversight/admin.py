"""Admin for audit exports and access anomalies, and the DPO dashboard as the admin home page."""

from __future__ import annotations

import threading
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from audit.freetext import may_reveal_freetext
from audit.models import AuditEntry, Outcome
from audit.models_exports import AnomalyAlert, AnomalyKind, AnomalyRule, AuditExport, ExportStatus
from audit.models_verification import VerificationRun
from governance.admin_base import RecordAdmin
from governance.api.errors import DomainError
from governance.subjects.models import Profile
from oversight.evidence import VIA_LABELS, entries_of_person, entry_row, reasons_revealed
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


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        label=_("Note"), min_length=3, max_length=500, strip=True,
        help_text=_("Why this is all right or what was done (kept with the alert and in the audit log)."),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )


def alert_entries_url(alert: AnomalyAlert) -> str:
    """The audit log filtered to the entries that raised ``alert``: its actor, its window's
    first..last sequence, narrowed as its rule's kind counts them."""
    params: dict[str, object] = {}
    if alert.first_seq is not None:
        params["seq__gte"] = alert.first_seq
    if alert.last_seq is not None:
        params["seq__lte"] = alert.last_seq
    if alert.actor_id:
        params["actor__id__exact"] = alert.actor_id
    elif alert.actor_label and "@" in alert.actor_label:
        params["actor_email"] = alert.actor_label
    if alert.kind == AnomalyKind.DENIED_ATTEMPTS:
        params["outcome__exact"] = Outcome.DENIED
    elif alert.kind == AnomalyKind.BULK_EXPORTS:
        params["action__exact"] = AuditEntry.Action.CREATE
    elif alert.kind in (AnomalyKind.READS_PER_HOUR, AnomalyKind.OFF_HOURS):
        params["action__exact"] = AuditEntry.Action.ACCESS
        params["outcome__exact"] = Outcome.ALLOWED
    return reverse("admin:audit_auditentry_changelist") + "?" + urlencode(params)


@admin.register(AnomalyAlert)
class AnomalyAlertAdmin(RecordAdmin):
    list_display = ("created_at", "kind", "actor_label", "count", "threshold", "window_start",
                    "entries_link", "acknowledged_at", "acknowledged_by")
    list_filter = ("kind", ("acknowledged_at", admin.EmptyFieldListFilter))
    readonly_fields = [f.name for f in AnomalyAlert._meta.fields] + ["entries_link", "acknowledge_link"]
    actions = ["acknowledge"]

    def has_change_permission(self, request, obj=None):
        return False  # read-only; acknowledging is its own audited step (with a note)

    def may_acknowledge(self, request) -> bool:
        return request.user.has_perm("audit.change_anomalyalert")

    @admin.display(description=_("entries that raised it"))
    def entries_link(self, obj: AnomalyAlert):
        if obj.first_seq is None:
            return "—"
        return format_html('<a class="alert-entries" href="{}">{}</a>', alert_entries_url(obj),
                           _("%(first)s … %(last)s") % {"first": obj.first_seq, "last": obj.last_seq})

    @admin.display(description=_("acknowledge"))
    def acknowledge_link(self, obj: AnomalyAlert):
        if obj.acknowledged_at is not None:
            return "—"
        url = reverse("admin:audit_anomalyalert_acknowledge", args=[obj.pk])
        return format_html('<a class="button" id="alert-acknowledge" href="{}">{}</a>', url, _("Acknowledge…"))

    def get_urls(self):
        return [
            path("<int:alert_id>/acknowledge/", self.admin_site.admin_view(self.acknowledge_view),
                 name="audit_anomalyalert_acknowledge"),
            *super().get_urls(),
        ]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.may_acknowledge(request):
            actions.pop("acknowledge", None)
        return actions

    @admin.action(description=_("Acknowledge the selected alerts (with a note)…"))
    def acknowledge(self, request, queryset):
        """An intermediate page asks for the note; nothing is acknowledged without one."""
        return self._acknowledge(request, list(queryset.filter(acknowledged_at__isnull=True)),
                                 from_action=True)

    def acknowledge_view(self, request, alert_id: int):
        alert = get_object_or_404(AnomalyAlert.objects.select_related("rule"), pk=alert_id)
        return self._acknowledge(request, [alert], from_action=False)

    def _acknowledge(self, request, alerts: list[AnomalyAlert], *, from_action: bool):
        from oversight.anomalies import AlertAlreadyAcknowledged, alert_acknowledge, alert_describe

        if not self.may_acknowledge(request):
            raise PermissionDenied
        changelist = reverse("admin:audit_anomalyalert_changelist")
        open_alerts = [a for a in alerts if a.acknowledged_at is None]
        if not open_alerts:
            messages.info(request, _("Nothing to acknowledge: the alerts are acknowledged already."))
            return HttpResponseRedirect(changelist)
        form = AcknowledgeForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_valid():
            done = 0
            for alert in open_alerts:
                try:
                    alert_acknowledge(alert=alert, actor=request.user, note=form.cleaned_data["note"],
                                      request=request)
                    done += 1
                except AlertAlreadyAcknowledged:
                    continue
            messages.success(request, _("%(n)d alert(s) acknowledged.") % {"n": done})
            if len(open_alerts) == 1:
                return HttpResponseRedirect(reverse("admin:audit_anomalyalert_change", args=[open_alerts[0].pk]))
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Acknowledge access anomaly alerts"),
            "form": form,
            "alerts": [{"alert": a, "text": alert_describe(a), "entries_url": alert_entries_url(a)}
                       for a in open_alerts],
            "from_action": from_action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/audit/anomalyalert/acknowledge.html", context)


_rendering = threading.local()


class PersonFilter(admin.SimpleListFilter):
    """``?person=<profile id>``: entries about one person (their profile and identities)."""

    title = _("person")
    parameter_name = "person"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, _("Person %(id)s") % {"id": value[:8]})] if value else []

    def has_output(self):
        return self.value() is not None

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            profile = Profile.objects.get(pk=uuid.UUID(value))
        except (ValueError, Profile.DoesNotExist):
            return queryset.none()
        return queryset & entries_of_person(profile)


class ViaFilter(admin.SimpleListFilter):
    title = _("via")
    parameter_name = "via"

    def lookups(self, request, model_admin):
        return list(VIA_LABELS.items())

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(additional_data__via=self.value())


if admin.site.is_registered(AuditEntry):
    admin.site.unregister(AuditEntry)  # django-auditlog's generic log view: replaced below


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log, readable: who did what to which object, which fields, allowed or denied,
    why (masked; the full text for roles that may reveal, itself recorded), from where."""

    list_display = ("seq", "when", "actor_shown", "action_shown", "object_shown", "fields_shown", "outcome_shown",
                    "reason_shown", "via_shown", "address_shown")
    list_display_links = ("seq", "when")
    list_filter = (PersonFilter, "outcome", "action", ("timestamp", admin.DateFieldListFilter),
                   ("actor", admin.RelatedFieldListFilter), ViaFilter)
    list_select_related = ("actor",)
    list_per_page = 100
    show_full_result_count = False  # the log is large: no COUNT(*) over all of it per page
    ordering = ("-seq",)
    search_fields = ()
    change_list_template = "admin/audit/auditentry/change_list.html"
    change_form_template = "admin/audit/auditentry/change_form.html"
    fields = ("seq", "when", "actor_shown", "action_shown", "object_shown", "fields_shown", "outcome_shown",
              "reason_shown", "via_shown", "address_shown", "cid", "partition", "pseq", "entry_hash", "prev_hash")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("content_type", "actor")

    def lookup_allowed(self, lookup, value, request=None):
        if lookup in ("actor_email", "seq__gte", "seq__lte", "actor__id__exact"):
            return True
        return super().lookup_allowed(lookup, value, request)

    # Rows ----------------------------------------------------------------------------------
    def _row(self, obj):
        # The admin instance is shared by every thread: the request being rendered is per thread.
        request = _rendering.request
        cache = request.__dict__.setdefault("_audit_rows", {})
        row = cache.get(obj.pk)
        if row is None:
            row = cache[obj.pk] = entry_row(obj, user=request.user,
                                            full_reasons=getattr(request, "_full_reasons", None))
        return row

    @admin.display(description=_("when"), ordering="seq")
    def when(self, obj):
        from governance.subjects.templatetags.mamoru_time import when

        return when(obj.timestamp)

    @admin.display(description=_("actor"))
    def actor_shown(self, obj):
        return self._row(obj)["actor"]

    @admin.display(description=_("action"), ordering="action")
    def action_shown(self, obj):
        return self._row(obj)["action"]

    @admin.display(description=_("object"))
    def object_shown(self, obj):
        return f"{obj.content_type.name if obj.content_type_id else '?'} · {obj.object_repr}"

    @admin.display(description=_("fields"))
    def fields_shown(self, obj):
        return self._row(obj)["fields"]

    @admin.display(description=_("outcome"), ordering="outcome")
    def outcome_shown(self, obj):
        row = self._row(obj)
        if row["denied"]:
            return format_html('<strong class="outcome-denied">{}</strong>', row["outcome"])
        return row["outcome"]

    @admin.display(description=_("reason"))
    def reason_shown(self, obj):
        return self._row(obj)["reason"] or "—"

    @admin.display(description=_("via"))
    def via_shown(self, obj):
        return self._row(obj)["via"]

    @admin.display(description=_("client address"))
    def address_shown(self, obj):
        return self._row(obj)["address"]

    # Views ---------------------------------------------------------------------------------
    def changelist_view(self, request, extra_context=None):
        _rendering.request = request
        reveal = request.GET.get("reveal_reasons") == "1" and may_reveal_freetext(request.user)
        if reveal:  # the parameter is ours, not a field lookup
            request.GET = request.GET.copy()
            del request.GET["reveal_reasons"]
        response = super().changelist_view(request, {**(extra_context or {}),
                                                     "may_reveal": may_reveal_freetext(request.user),
                                                     "revealed": reveal})
        changelist = getattr(response, "context_data", {}).get("cl")
        if reveal and changelist is not None:
            entries = list(changelist.result_list)
            request._full_reasons, _destroyed = reasons_revealed(
                user=request.user, entries=entries, request=request, via="admin:audit")
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        _rendering.request = request
        obj = self.get_object(request, object_id)
        reveal = request.GET.get("reveal_reasons") == "1" and may_reveal_freetext(request.user)
        if obj is not None and reveal:
            request._full_reasons, _destroyed = reasons_revealed(
                user=request.user, entries=[obj], request=request, via="admin:audit")
        extra = {**(extra_context or {}), "may_reveal": may_reveal_freetext(request.user)
                 and bool((obj.additional_data or {}).get("reason_enc") if obj else False), "revealed": reveal}
        return super().change_view(request, object_id, form_url, extra_context=extra)


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
