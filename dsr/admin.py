"""Admin for data-subject requests: progress, nodes, timeline, and the staff actions."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from dsr.models import (
    OPEN_STATUSES,
    AccessPackage,
    DataSubjectRequest,
    InformationReason,
    MessageKind,
    RequestEvent,
    RequestTask,
    StaffMailPreference,
    WorkspaceDsrPolicy,
)
from dsr.selectors import dsr_request_progress
from dsr.services import (
    dsr_assignable_users,
    dsr_mail_preview,
    dsr_message_send,
    dsr_note_add,
    dsr_request_approve,
    dsr_request_assign,
    dsr_request_deny,
    dsr_request_extend,
    dsr_request_retry,
    dsr_requests_assign,
)
from governance.access.policy import workspaces_visible_to
from governance.api.errors import DomainError
from oversight.dashboard import AMBER_DAYS


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


class AssigneeField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_full_name() or obj.username


class AssignForm(forms.Form):
    assignee = AssigneeField(label=_("Assigned to"), queryset=None, required=False,
                             empty_label=_("Nobody (team queue)"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = dsr_assignable_users()


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Internal note"), widget=forms.Textarea(attrs={"rows": 3}), max_length=4000,
                           help_text=_("Seen by staff only. Personal data in it is masked for roles that may "
                                       "not see it."))


class MessageForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=[(MessageKind.MESSAGE, MessageKind.MESSAGE.label),
                                                        (MessageKind.MORE_INFORMATION,
                                                         MessageKind.MORE_INFORMATION.label)],
                             widget=forms.RadioSelect, initial=MessageKind.MESSAGE)
    info_reason = forms.ChoiceField(label=_("The information is needed"), required=False,
                                    choices=[("", "—"), *InformationReason.choices])
    body = forms.CharField(label=_("Message"), widget=forms.Textarea(attrs={"rows": 5}), max_length=4000,
                           help_text=_("Write in the person's language; it is e-mailed as you see it in the "
                                       "preview."))

    def clean(self):
        data = super().clean()
        if data.get("kind") == MessageKind.MORE_INFORMATION and not data.get("info_reason"):
            self.add_error("info_reason", gettext("Say what the information is needed for."))
        return data


class QueueFilter(admin.SimpleListFilter):
    """"My queue": the requests assigned to me; or nobody's."""

    title = _("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [("mine", _("My queue")), ("unassigned", _("Not assigned"))]

    def queryset(self, request, queryset):
        if self.value() == "mine":
            return queryset.filter(assignee=request.user)
        if self.value() == "unassigned":
            return queryset.filter(assignee=None)
        return queryset


class DueFilter(admin.SimpleListFilter):
    """Open requests by deadline: overdue, due this week, clock paused."""

    title = _("deadline")
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("overdue", _("Overdue")), ("week", _("Due this week")), ("paused", _("Clock paused"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        open_ = queryset.filter(status__in=OPEN_STATUSES)
        if self.value() == "overdue":
            return open_.filter(due_at__lte=now, paused_at=None)
        if self.value() == "week":
            return open_.filter(due_at__gt=now, due_at__lte=now + dt.timedelta(days=AMBER_DAYS), paused_at=None)
        if self.value() == "paused":
            return open_.exclude(paused_at=None)
        return queryset


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = ("short_id", "workspace", "request_type", "status", "assignee", "jurisdiction", "received_at",
                    "due", "progress")
    list_filter = (QueueFilter, DueFilter, "status", "request_type", "jurisdiction", "workspace")
    list_select_related = ("workspace", "assignee")
    date_hierarchy = "received_at"
    ordering = ("-received_at",)
    fields = ("workspace", "request_type", "status", "requester", "person", "assignee", "erasure_preview",
              "jurisdiction", "locale", "channel",
              "received_at", "acknowledged_at", "verified_at", "approved_at", "approved_by", "started_at",
              "completed_at", "due_at", "paused_at", "extended_at", "extension_reason", "rejection_reason",
              "attention_reason", "keep_until", "progress", "summary")
    readonly_fields = fields
    inlines = [RequestTaskInline, RequestEventInline]
    actions = ["approve", "deny", "extend", "retry", "assign"]

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

    @admin.display(description=_("requester"))
    def requester(self, obj: DataSubjectRequest) -> str:
        """The person who asked, masked (their address is personal data; the request page is not a
        place to read it)."""
        from governance.access.masking import mask_value

        try:
            email = obj.email
        except Exception:  # noqa: BLE001 - the request's data key is destroyed once it is closed
            email = ""
        return mask_value(email, kind="email") if email else gettext("(erased with the request's data)")

    @admin.display(description=_("person"))
    def person(self, obj: DataSubjectRequest) -> str:
        """A link to the person's page (their profile), when the request matched one."""
        if obj.profile_id is None:
            return gettext("No matching profile")
        from django.urls import NoReverseMatch

        for name in ("admin:subjects_profile_person", "admin:subjects_profile_change"):
            try:
                url = reverse(name, args=[obj.profile_id])
            except NoReverseMatch:
                continue
            return format_html('<a href="{}" id="request-person-link">{}</a>', url, gettext("Open the person's page"))
        return "—"

    @admin.display(description=_("due"), ordering="due_at")
    def due(self, obj: DataSubjectRequest) -> str:
        from oversight.dashboard import sla_colour

        if obj.status not in OPEN_STATUSES:
            return format_html("{}", _date(obj.due_at))
        if obj.paused_at:
            return format_html('<span class="sla-badge sla-paused">{}</span> {}', gettext("Clock paused"),
                               _date(obj.due_at))
        sla = sla_colour(obj.due_at, timezone.now())
        label = {"overdue": gettext("Overdue"), "soon": gettext("Due soon")}.get(sla, gettext("On time"))
        return format_html('<span class="sla-badge sla-{}">{}</span> {}', sla, label, _date(obj.due_at))

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
        view = self.admin_site.admin_view
        return [
            path("<uuid:object_id>/erasure-preview/", view(self.erasure_preview_view),
                 name="dsr_datasubjectrequest_erasure_preview"),
            path("<uuid:object_id>/assign/", view(self.assign_view), name="dsr_datasubjectrequest_assign"),
            path("<uuid:object_id>/note/", view(self.note_view), name="dsr_datasubjectrequest_note"),
            path("<uuid:object_id>/act/<str:action>/", view(self.act_view), name="dsr_datasubjectrequest_act"),
            path("<uuid:object_id>/deny/", view(self.confirm_view), {"action": "deny"},
                 name="dsr_datasubjectrequest_deny"),
            path("<uuid:object_id>/extend/", view(self.confirm_view), {"action": "extend"},
                 name="dsr_datasubjectrequest_extend"),
            path("<uuid:object_id>/message/", view(self.confirm_view), {"action": "message"},
                 name="dsr_datasubjectrequest_message"),
            *super().get_urls(),
        ]

    # --- the request page as a workbench ------------------------------------------------------

    def _request_for(self, request, object_id, *, change: bool = True) -> DataSubjectRequest:
        obj = get_object_or_404(self.get_queryset(request), pk=object_id)
        if change and not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _back(self, obj: DataSubjectRequest) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:dsr_datasubjectrequest_change", args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from dsr.workbench import request_workbench

        obj = self.get_object(request, object_id)
        extra = {}
        if obj is not None:
            extra = request_workbench(request=obj, user=request.user, http_request=request,
                                      reveal=request.GET.get("reveal_text") == "1")
            extra["assign_form"] = AssignForm(initial={"assignee": obj.assignee_id})
            extra["note_form"] = NoteForm()
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "workbench": extra})

    def assign_view(self, request, object_id):
        obj = self._request_for(request, object_id)
        if request.method != "POST":
            return self._back(obj)
        form = AssignForm(request.POST)
        if form.is_valid():
            try:
                dsr_request_assign(request=obj, actor=request.user, assignee=form.cleaned_data["assignee"],
                                   http_request=request)
                self.message_user(request, gettext("Assignment saved."), messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
        else:
            self.message_user(request, gettext("Choose someone who may work requests."), messages.ERROR)
        return self._back(obj)

    def note_view(self, request, object_id):
        obj = self._request_for(request, object_id)
        if request.method == "POST":
            form = NoteForm(request.POST)
            if form.is_valid():
                dsr_note_add(request=obj, actor=request.user, text=form.cleaned_data["text"], http_request=request)
                self.message_user(request, gettext("Note added."), messages.SUCCESS)
            else:
                self.message_user(request, gettext("Write a note (at most 4,000 characters)."), messages.ERROR)
        return self._back(obj)

    def act_view(self, request, object_id, action):
        """Approve or retry from the request page, then back on the request (not the list)."""
        obj = self._request_for(request, object_id)
        services = {"approve": (dsr_request_approve, _("Approved.")), "retry": (dsr_request_retry, _("Retried."))}
        if request.method != "POST" or action not in services:
            return self._back(obj)
        service, done = services[action]
        try:
            service(request=obj, actor=request.user)
            self.message_user(request, str(done), messages.SUCCESS)
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        return self._back(obj)

    def confirm_view(self, request, object_id, action):
        """Deny, extend or write to the person: compose, then a preview of exactly the e-mail they
        will receive, then confirm (or cancel: back on the request, nothing done)."""
        obj = self._request_for(request, object_id)
        form_class = MessageForm if action == "message" else ReasonForm
        step = request.POST.get("step", "compose")
        form = form_class(request.POST or None) if request.method == "POST" else form_class(
            initial={"kind": request.GET.get("kind", MessageKind.MESSAGE)} if action == "message" else None)
        preview = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            args = ({"body": data["body"], "kind": data["kind"], "info_reason": data.get("info_reason", "")}
                    if action == "message" else {"reason": data["reason"]})
            if step == "confirm":
                try:
                    if action == "deny":
                        dsr_request_deny(request=obj, actor=request.user, reason=data["reason"])
                        done = gettext("Request denied; the person was told why.")
                    elif action == "extend":
                        dsr_request_extend(request=obj, actor=request.user, reason=data["reason"])
                        done = gettext("Deadline extended; the person was told why.")
                    else:
                        dsr_message_send(request=obj, actor=request.user, http_request=request, **args)
                        done = gettext("Message sent.")
                except DomainError as exc:
                    self.message_user(request, exc.detail, messages.ERROR)
                else:
                    self.message_user(request, done, messages.SUCCESS)
                return self._back(obj)
            if step == "compose":  # "Edit" from the preview: the form again, filled in
                return self._confirm_page(request, obj, action, form, None)
            try:
                preview = dsr_mail_preview(request=obj, action=action, **args)
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
        return self._confirm_page(request, obj, action, form, preview)

    def _confirm_page(self, request, obj, action, form, preview):
        from dsr.workbench import confirm_page_context

        return TemplateResponse(request, "admin/dsr/confirm.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": obj,
            **confirm_page_context(request=obj, action=action),
            "form": form, "preview": preview, "action": action,
            "cancel_url": reverse("admin:dsr_datasubjectrequest_change", args=[obj.pk]),
        })

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
        if queryset.count() == 1:  # one request: the confirmation page with the e-mail's preview
            return HttpResponseRedirect(reverse("admin:dsr_datasubjectrequest_deny", args=[queryset.get().pk]))
        return self._with_reason(request, queryset, dsr_request_deny, str(_("Denied")), "deny")

    @admin.action(description=_("Extend the deadline (with reasons)"), permissions=["change"])
    def extend(self, request, queryset):
        if queryset.count() == 1:
            return HttpResponseRedirect(reverse("admin:dsr_datasubjectrequest_extend", args=[queryset.get().pk]))
        return self._with_reason(request, queryset, dsr_request_extend, str(_("Extended")), "extend")

    @admin.action(description=_("Assign selected requests"), permissions=["change"])
    def assign(self, request, queryset):
        """Bulk assign: choose a person (or nobody), confirm; all in one transaction."""
        if "apply" in request.POST:
            form = AssignForm(request.POST)
            if form.is_valid():
                try:
                    n = dsr_requests_assign(requests=list(queryset), actor=request.user,
                                            assignee=form.cleaned_data["assignee"], http_request=request)
                except DomainError as exc:
                    self.message_user(request, exc.detail, messages.ERROR)
                else:
                    self.message_user(request, gettext("Assigned: %(n)d") % {"n": n}, messages.SUCCESS)
                return None
        else:
            form = AssignForm()
        return render(request, "admin/dsr/reason.html", {
            **self.admin_site.each_context(request),
            "form": form, "queryset": queryset, "action": "assign", "title": _("Assign selected requests"),
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    @admin.action(description=_("Retry failed nodes"), permissions=["change"])
    def retry(self, request, queryset):
        self._run(request, queryset, dsr_request_retry, str(_("Retried")))


def _date(value) -> str:
    """A time in the viewer's zone, with the zone named (``2026-05-01 09:30 JST``)."""
    from django.utils.dateformat import format as date_format

    return date_format(timezone.localtime(value), "Y-m-d H:i T") if value else "—"


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
