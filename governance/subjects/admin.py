"""Profiles in the admin: masked everywhere, every view audited, reveal with a stated reason."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from guardian.admin import GuardedModelAdmin

from audit.models import Outcome
from audit.services import access_denied_endpoint, access_record, access_record_many
from governance.access import policy
from governance.access.masking import mask_value
from governance.admin_base import ReadOnlyAdmin
from governance.subjects.models import (
    SENSITIVE_PROFILE_FIELDS,
    Identity,
    Profile,
    ProfileMerge,
    Workspace,
)
from governance.subjects.person import (
    person_page_sections,
    person_page_view_record,
    person_url,
    subjects_search,
)
from governance.subjects.selectors import profiles_preload_keys
from governance.subjects.services import ProfileError, RevealForbidden, profile_reveal

MASKED_FIELDS = ["attributes:masked", "identities:masked"]


@admin.register(Workspace)
class WorkspaceAdmin(GuardedModelAdmin):
    """Object permissions (Object permissions button) assign support agents to a workspace."""

    list_display = ("name", "slug", "default_jurisdiction", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request):
        return policy.workspaces_visible_to(request.user) & super().get_queryset(request)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or (
            obj is None and policy.workspaces_visible_to(request.user).exists()
        ) or (obj is not None and policy.workspaces_visible_to(request.user).filter(pk=obj.pk).exists())

    def has_module_permission(self, request):
        return self.has_view_permission(request)


class IdentityInline(admin.TabularInline):
    model = Identity
    extra = 0
    can_delete = False
    fields = ("kind", "namespace", "masked_value", "verified", "created_at")
    readonly_fields = fields

    @admin.display(description=_("value"))
    def masked_value(self, obj):
        return mask_value(obj.value, kind=obj.kind)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return obj is None or policy.can_view_profile(request.user, obj)


class RevealForm(forms.Form):
    fields_to_reveal = forms.MultipleChoiceField(
        label=_("Fields"),
        choices=[(name, Profile._meta.get_field(name).verbose_name) for name in SENSITIVE_PROFILE_FIELDS]
        + [("identities", _("identities"))],
        widget=forms.CheckboxSelectMultiple,
        initial=list(SENSITIVE_PROFILE_FIELDS) + ["identities"],
    )
    reason = forms.CharField(
        label=_("Reason"), min_length=5, max_length=500,
        help_text=_("Recorded in the audit log with your name, e.g. a ticket number."),
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
    )


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("short_id", "workspace", "jurisdiction", "status", "masked_name", "created_at", "person_link")
    list_filter = ("workspace", "jurisdiction", "status")
    list_select_related = ("workspace",)
    list_per_page = 50
    inlines = [IdentityInline]
    readonly_fields = (
        "id", "workspace", "jurisdiction", "status", "locale", "merged_into", "created_at", "updated_at",
        "shredded_at", *[f"masked_{name}" for name in SENSITIVE_PROFILE_FIELDS], "reveal_link", "person_link",
    )
    fieldsets = (
        (None, {"fields": ("id", "person_link", "workspace", "jurisdiction", "status", "locale", "merged_into")}),
        (_("Personal data (masked)"), {"fields": (*[f"masked_{n}" for n in SENSITIVE_PROFILE_FIELDS], "reveal_link")}),
        (_("Dates"), {"fields": ("created_at", "updated_at", "shredded_at")}),
    )

    # Masked value columns -------------------------------------------------------------------
    @admin.display(description=_("ID"))
    def short_id(self, obj):
        return str(obj.id)[:8]

    @admin.display(description=_("name"))
    def masked_name(self, obj):
        return mask_value(obj.full_name)

    def __getattr__(self, name):
        if name.startswith("masked_") and name[7:] in SENSITIVE_PROFILE_FIELDS:
            field = name[7:]

            def display(obj, _field=field):
                return mask_value(getattr(obj, _field))

            display.short_description = Profile._meta.get_field(field).verbose_name
            return display
        raise AttributeError(name)

    @admin.display(description=_("Reveal"))
    def reveal_link(self, obj):
        url = reverse("admin:subjects_profile_reveal", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Reveal personal data…"))

    @admin.display(description=_("Person page"))
    def person_link(self, obj):
        return format_html('<a href="{}">{}</a>', person_url(obj), _("Everything about this person"))

    # Access control ---------------------------------------------------------------------------
    def get_queryset(self, request):
        return policy.profiles_visible_to(request.user, super().get_queryset(request))

    def has_module_permission(self, request):
        return policy.may_list_profiles(request.user)

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return policy.may_list_profiles(request.user)
        return policy.can_view_profile(request.user, obj)

    def has_add_permission(self, request):
        return False  # profiles arrive through the API, ingest and identity resolution

    def has_change_permission(self, request, obj=None):
        return False  # personal data changes go through services (audited), not free-form edits

    def has_delete_permission(self, request, obj=None):
        return False  # erasure is a data-subject request (crypto-shredding), never a row delete

    # Audit every read -------------------------------------------------------------------------
    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            if request.user.is_authenticated:
                access_denied_endpoint(actor=request.user, model=Profile, request=request, via="admin:list")
            raise PermissionDenied
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            page = list(changelist.result_list)
            profiles_preload_keys(page)
            access_record_many(actor=request.user, objs=page, fields=MASKED_FIELDS, request=request, via="admin:list")
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not policy.may_list_profiles(request.user):
            access_denied_endpoint(actor=request.user, model=Profile, request=request, via="admin:change")
            raise PermissionDenied
        obj = Profile.objects.filter(pk=object_id).first() if _is_uuid(object_id) else None
        if obj is None or not policy.can_view_profile(request.user, obj):
            if obj is not None:
                access_record(actor=request.user, obj=obj, outcome=Outcome.DENIED, request=request, via="admin:change")
            raise Http404  # hidden objects look exactly like missing ones
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            access_record(actor=request.user, obj=obj, fields=MASKED_FIELDS, request=request, via="admin:change")
        return response

    # Reveal -----------------------------------------------------------------------------------
    def get_urls(self):
        return [
            path("search/", self.admin_site.admin_view(self.search_view), name="subjects_profile_search"),
            path("<uuid:object_id>/person/", self.admin_site.admin_view(self.person_view),
                 name="subjects_profile_person"),
            path("<uuid:object_id>/reveal/", self.admin_site.admin_view(self.reveal_view), name="subjects_profile_reveal"),
            *super().get_urls(),
        ]

    def search_view(self, request):
        """The header search: e-mail, phone, customer id, name (roles that may reveal), request
        reference. One match opens it; the search is audited (never the searched value)."""
        query = request.GET.get("q", "").strip()
        hits = subjects_search(user=request.user, query=query, request=request) if query else []
        if len(hits) == 1:
            return redirect(hits[0].url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Find a person"),
            "query": query,
            "hits": hits,
        }
        return TemplateResponse(request, "admin/subjects/profile/search.html", context)

    def person_view(self, request, object_id):
        """Everything about one person on one page, each section as the role may see it."""
        if not policy.may_list_profiles(request.user):
            access_denied_endpoint(actor=request.user, model=Profile, request=request, via="admin:person")
            raise PermissionDenied
        profile = Profile.objects.select_related("workspace", "merged_into").filter(pk=object_id).first()
        if profile is None:
            raise Http404
        if not policy.can_view_profile(request.user, profile):
            access_record(actor=request.user, obj=profile, outcome=Outcome.DENIED, request=request, via="admin:person")
            raise Http404  # hidden objects look exactly like missing ones
        profiles_preload_keys([profile])
        sections = person_page_sections(user=request.user, profile=profile)
        person_page_view_record(user=request.user, profile=profile, sections=sections, request=request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": profile,
            "title": _("Person %(id)s") % {"id": str(profile.pk)[:8]},
            "sections": sections,
        }
        return TemplateResponse(request, "admin/subjects/profile/person.html", context)

    def reveal_view(self, request, object_id):
        profile = get_object_or_404(Profile, pk=object_id)
        if not policy.can_view_profile(request.user, profile):
            access_record(actor=request.user, obj=profile, outcome=Outcome.DENIED, request=request, via="admin:reveal")
            raise Http404
        revealed = None
        form = RevealForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                revealed = profile_reveal(
                    actor=request.user, profile=profile, fields=form.cleaned_data["fields_to_reveal"],
                    reason=form.cleaned_data["reason"], request=request, via="admin",
                )
            except (RevealForbidden, ProfileError) as exc:
                messages.error(request, exc.detail)
                return redirect("admin:subjects_profile_change", profile.pk)
        labels = {name: Profile._meta.get_field(name).verbose_name for name in SENSITIVE_PROFILE_FIELDS}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": profile,
            "title": _("Reveal personal data"),
            "form": form,
            "revealed": [(labels.get(k, k), v) for k, v in (revealed or {}).items() if k != "identities"],
            "revealed_identities": (revealed or {}).get("identities"),
            "can_reveal": policy.can_reveal(request.user, profile),
            "back_url": person_url(profile) if request.GET.get("back") == "person"
            else reverse("admin:subjects_profile_change", args=[profile.pk]),
        }
        return TemplateResponse(request, "admin/subjects/profile/reveal.html", context)


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@admin.register(ProfileMerge)
class ProfileMergeAdmin(ReadOnlyAdmin):
    list_display = ("survivor", "merged_profile_id", "identities_moved", "reason", "actor", "created_at")
    readonly_fields = [f.name for f in ProfileMerge._meta.fields]
