"""Admin for data-subject requests: progress, nodes, timeline, and the staff actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from dsr.models import (
    AccessPackage,
    DataSubjectRequest,
    RequestEvent,
    RequestTask,
    StaffMailPreference,
    WorkspaceDsrPolicy,
)
from dsr.selectors import dsr_request_progress
from dsr.services import (
    dsr_request_approve,
    dsr_request_deny,
    dsr_request_extend,
    dsr_request_retry,
)
from governance.access.policy import workspaces_visible_to
from governance.api.errors import DomainError


class RequestTaskInline(admin.TabularInline):
    model = RequestTask
    fields = ("phase", "node", "status", "attempts", "rows_found", "rows_changed", "duration_ms", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class RequestEventInline(admin.TabularInline):
    model = RequestEvent
    fields = ("at", "kind", "message", "actor")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea, min_length=10)


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = ("short_id", "workspace", "request_type", "status", "jurisdiction", "received_at", "due_at",
                    "progress")
    list_filter = ("status", "request_type", "jurisdiction", "workspace")
    date_hierarchy = "received_at"
    ordering = ("-received_at",)
    fields = ("workspace", "request_type", "status", "erasure_preview", "jurisdiction", "locale", "channel", "profile",
              "received_at", "acknowledged_at", "verified_at", "approved_at", "approved_by", "started_at",
              "completed_at", "due_at", "extended_at", "extension_reason", "rejection_reason",
              "attention_reason", "keep_until", "progress", "summary")
    readonly_fields = fields
    inlines = [RequestTaskInline, RequestEventInline]
    actions = ["approve", "deny", "extend", "retry"]

    def get_fields(self, request, obj=None):
        # A request that needs attention says why first, above everything else.
        fields = list(super().get_fields(request, obj))
        if obj is not None and obj.attention_reason and "attention_reason" in fields:
            fields.remove("attention_reason")
            fields.insert(0, "attention_reason")
        return fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(workspace__in=workspaces_visible_to(request.user))

    def has_add_permission(self, request) -> bool:
        return False  # requests come from the portal or the API (with verification)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # records are kept 24 months (CCPA §7101) and purged by a task

    @admin.display(description=_("request"))
    def short_id(self, obj: DataSubjectRequest) -> str:
        return str(obj.id)[:8]

    @admin.display(description=_("erasure preview"))
    def erasure_preview(self, obj: DataSubjectRequest) -> str:
        """What the erasure would change (values masked); a link to see them with a reason."""
        if obj.request_type != "erasure":
            return "—"
        from dsr.preview import erasure_preview

        return render_to_string("admin/dsr/erasure_preview.html", {
            "preview": erasure_preview(request=obj), "original": obj,
            "reveal_url": reverse("admin:dsr_datasubjectrequest_erasure_preview", args=[obj.pk]),
        })

    def get_urls(self):
        return [
            path("<uuid:object_id>/erasure-preview/", self.admin_site.admin_view(self.erasure_preview_view),
                 name="dsr_datasubjectrequest_erasure_preview"),
            *super().get_urls(),
        ]

    def erasure_preview_view(self, request, object_id):
        """The erasure preview with values: for staff who may reveal, with a reason (audited)."""
        from dsr.preview import erasure_preview, erasure_preview_reveal

        obj = get_object_or_404(self.get_queryset(request), pk=object_id, request_type="erasure")
        form = ReasonForm(request.POST or None)
        preview = erasure_preview(request=obj)
        if request.method == "POST" and form.is_valid():
            try:
                preview = erasure_preview_reveal(request=obj, actor=request.user, reason=form.cleaned_data["reason"],
                                                 http_request=request)
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
        return TemplateResponse(request, "admin/dsr/erasure_preview_page.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": obj,
            "title": _("Erasure preview"), "form": form, "preview": preview,
        })

    @admin.display(description=_("progress"))
    def progress(self, obj: DataSubjectRequest) -> str:
        p = dsr_request_progress(request=obj)
        return format_html(
            '<progress max="100" value="{}"></progress> {}% ({}/{}, {} failed)',
            p["percent"], p["percent"], p["done"], p["total"], p["failed"],
        )

    def _run(self, request, queryset, service, label, **kwargs):
        done = 0
        for obj in queryset:
            try:
                service(request=obj, actor=request.user, **kwargs)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{str(obj.id)[:8]}: {exc.detail}", messages.ERROR)
        if done:
            self.message_user(request, f"{label}: {done}", messages.SUCCESS)

    def _with_reason(self, request, queryset, service, label, action):
        if "apply" in request.POST:
            form = ReasonForm(request.POST)
            if form.is_valid():
                self._run(request, queryset, service, label, reason=form.cleaned_data["reason"])
                return None
        else:
            form = ReasonForm()
        return render(request, "admin/dsr/reason.html", {
            "form": form, "queryset": queryset, "action": action, "title": label,
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    @admin.action(description=_("Approve selected requests"), permissions=["change"])
    def approve(self, request, queryset):
        self._run(request, queryset, dsr_request_approve, str(_("Approved")))

    @admin.action(description=_("Deny selected requests (with reasons)"), permissions=["change"])
    def deny(self, request, queryset):
        return self._with_reason(request, queryset, dsr_request_deny, str(_("Denied")), "deny")

    @admin.action(description=_("Extend the deadline (with reasons)"), permissions=["change"])
    def extend(self, request, queryset):
        return self._with_reason(request, queryset, dsr_request_extend, str(_("Extended")), "extend")

    @admin.action(description=_("Retry failed nodes"), permissions=["change"])
    def retry(self, request, queryset):
        self._run(request, queryset, dsr_request_retry, str(_("Retried")))


@admin.register(AccessPackage)
class AccessPackageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "size", "created_at", "expires_at", "downloads", "deleted_at")
    readonly_fields = ("request", "path", "size", "sha256", "created_at", "expires_at", "downloads", "deleted_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WorkspaceDsrPolicy)
class WorkspaceDsrPolicyAdmin(admin.ModelAdmin):
    list_display = ("workspace", "request_type", "requires_approval")


@admin.register(StaffMailPreference)
class StaffMailPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "language")
