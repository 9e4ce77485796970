"""Admin: the DPO edits purposes (drafts), publishes versions, manages sites, keys and webhooks."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.models import (
    ConsentAmendment,
    ConsentEvent,
    ConsentState,
    KeyKind,
    ProcessingRestriction,
    Purpose,
    PurposeVersion,
    Site,
    SiteKey,
    VersionStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from consent.services import (
    ConsentError,
    purpose_version_draft,
    purpose_version_publish,
    site_key_create,
    site_key_revoke,
    site_key_rotate,
)
from governance.admin_base import ReadOnlyAdmin
from governance.crypto import envelope


class PurposeVersionInline(admin.TabularInline):
    model = PurposeVersion
    extra = 0
    fields = ("version", "status", "name_en", "name_ja", "gdpr_basis", "ccpa_category", "published_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    list_display = ("code", "current_version", "ordering")
    search_fields = ("code",)
    readonly_fields = ("current_version",)
    inlines = [PurposeVersionInline]
    actions = ["new_draft"]
    change_list_template = "consent/admin/purpose_changelist.html"

    @admin.action(description=_("Start a new draft version"))
    def new_draft(self, request, queryset):
        for purpose in queryset:
            version = purpose_version_draft(purpose=purpose, actor=request.user)
            self.message_user(request, _("Draft %(v)s created.") % {"v": version})

    def get_urls(self):
        return [
            path("rates/", self.admin_site.admin_view(self.rates_view), name="consent_purpose_rates"),
            *super().get_urls(),
        ]

    def rates_view(self, request):
        """Consent rates per purpose over time (server-side SVG, no JavaScript)."""
        from consent.selectors import consent_rates_by_purpose
        from governance.charts import line_chart

        raw_days = request.GET.get("days", "")
        days = max(1, min(int(raw_days), 365)) if raw_days.isdigit() else 30  # anything else: the default
        since = timezone.now() - timedelta(days=days)
        rows = consent_rates_by_purpose(since=since, bucket="day")
        labels = sorted({str(r["date"]) for r in rows})
        series: dict[str, list] = {}
        for code in sorted({r["purpose_code"] for r in rows}):
            by_day = {str(r["date"]): r for r in rows if r["purpose_code"] == code}
            values = []
            for day in labels:
                r = by_day.get(day)
                total = (r["given"] + r["refused"] + r["withdrawn"]) if r else 0
                values.append(round(100 * r["given"] / total, 1) if total else None)
            series[code] = values
        chart = line_chart(
            title=str(_("Share of decisions that gave consent, per purpose and day")),
            labels=labels, series=series, percent=True,
        )
        context = {**self.admin_site.each_context(request), "title": _("Consent rates"), "chart": chart,
                   "rows": rows, "days": days, "opts": self.model._meta}
        return TemplateResponse(request, "consent/admin/rates.html", context)


@admin.register(PurposeVersion)
class PurposeVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "gdpr_basis", "ccpa_category", "appi_category", "material_change",
                    "published_at")
    list_filter = ("status", "gdpr_basis", "ccpa_category", "appi_category")
    actions = ["publish"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != VersionStatus.DRAFT:
            # Published versions are immutable: a material change is a new version.
            return [f.name for f in self.model._meta.fields]
        return ("status", "published_at")

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.status == VersionStatus.DRAFT

    @admin.action(description=_("Publish the selected drafts"))
    def publish(self, request, queryset):
        for version in queryset.filter(status=VersionStatus.DRAFT):
            try:
                purpose_version_publish(version=version, actor=request.user)
                self.message_user(request, _("%(v)s published.") % {"v": version})
            except Exception as exc:  # shown to the DPO, not swallowed
                self.message_user(request, f"{version}: {exc}", level=messages.ERROR)


class SiteKeyInline(admin.TabularInline):
    model = SiteKey
    extra = 0
    fields = ("kind", "key_id", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "workspace", "rate_limit_per_minute")
    list_filter = ("workspace",)
    filter_horizontal = ("purposes",)
    inlines = [SiteKeyInline]
    actions = ["issue_publishable", "issue_secret"]

    def _issue(self, request, queryset, kind):
        for site in queryset:
            _key, secret = site_key_create(site=site, kind=kind, actor=request.user)
            self.message_user(
                request, _("New %(kind)s key for %(site)s (shown only now): %(secret)s")
                % {"kind": kind, "site": site, "secret": secret}, level=messages.WARNING,
            )

    @admin.action(description=_("Issue a publishable key (shown once)"))
    def issue_publishable(self, request, queryset):
        self._issue(request, queryset, KeyKind.PUBLISHABLE)

    @admin.action(description=_("Issue a secret key (shown once)"))
    def issue_secret(self, request, queryset):
        self._issue(request, queryset, KeyKind.SECRET)


@admin.register(SiteKey)
class SiteKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "site", "kind", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("kind", "site")
    readonly_fields = ("site", "kind", "key_id", "created_at", "expires_at", "revoked_at", "last_used_at")
    exclude = ("digest",)
    actions = ["revoke", "rotate"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Revoke"))
    def revoke(self, request, queryset):
        for key in queryset:
            site_key_revoke(key=key, actor=request.user)
        self.message_user(request, _("Revoked."))

    @admin.action(description=_("Rotate (old key works 24 more hours)"))
    def rotate(self, request, queryset):
        for key in queryset:
            try:
                _new, secret = site_key_rotate(key=key, actor=request.user)
            except ConsentError:
                self.message_user(request, _("%(k)s is revoked or expired and was not rotated; issue a new key.")
                                  % {"k": key.key_id}, level=messages.ERROR)
                continue
            self.message_user(request, _("Replacement for %(k)s (shown only now): %(s)s") % {"k": key.key_id, "s": secret},
                              level=messages.WARNING)


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "purpose", "purpose_version", "state", "method", "site", "occurred_at", "redacted_at")
    list_filter = ("state", "method", "purpose", "site")
    exclude = ("identity_index",)
    date_hierarchy = "occurred_at"
    show_full_result_count = False


@admin.register(ConsentAmendment)
class ConsentAmendmentAdmin(ReadOnlyAdmin):
    """Merges and erasure redactions, chained with the events they changed (read-only)."""

    list_display = ("seq", "kind", "profile_ref", "survivor_ref", "recorded_at", "actor_label")
    list_filter = ("kind",)


@admin.register(ConsentState)
class ConsentStateAdmin(ReadOnlyAdmin):
    list_display = ("profile", "purpose", "purpose_version", "state", "method", "occurred_at", "needs_renewal")
    list_filter = ("state", "purpose", "needs_renewal")
    show_full_result_count = False


@admin.register(ProcessingRestriction)
class ProcessingRestrictionAdmin(ReadOnlyAdmin):
    list_display = ("profile", "purpose_code", "reason", "created_at", "lifted_at")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("name", "url", "workspace", "active")
    fields = ("workspace", "name", "url", "purpose_codes", "active", "allow_internal_hosts")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.data_key_id = envelope.data_key_create(owner="consent.webhookendpoint")
            obj.secret = "whsec_" + secrets.token_urlsafe(32)
            messages.warning(request, _("Signing secret (shown only now): %(s)s") % {"s": obj.secret})
        super().save_model(request, obj, form, change)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("pk", "endpoint", "status", "attempts", "last_status_code", "last_error", "created_at",
                    "delivered_at")
    list_filter = ("status", "endpoint")
