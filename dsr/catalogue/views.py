"""Admin pages of the connector catalogue: pick a service, enter its secrets, test the connection,
see the collections and fields it brings into the data map (mounted under the admin's login)."""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dsr.catalogue import CatalogueError, catalogue_service, catalogue_services
from dsr.catalogue.services import catalogue_store_add, store_connection_test
from governance.access.mfa import mfa_blocks, totp_has_device
from governance.datamap.models import Store
from governance.datamap.spec import KEY_RE, DataMapInvalid


def staff_view(view):
    """The admin's gates for a page outside ``/admin/``: staff login (``admin_view``) and the
    second factor (as ``MfaGateMiddleware`` does for the admin's own pages)."""
    @functools.wraps(view)
    def gated(request, *args, **kwargs):
        if mfa_blocks(request.user, method=request.method):
            target = "access:mfa-verify" if totp_has_device(request.user) else "access:mfa-setup"
            next_url = request.get_full_path() if request.method in ("GET", "HEAD") else reverse("dsr-catalogue")
            return HttpResponseRedirect(f"{reverse(target)}?{urlencode({'next': next_url})}")
        return view(request, *args, **kwargs)

    return admin.site.admin_view(gated)


def _require(request, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


class CatalogueStoreForm(forms.Form):
    """Key, scope, the service's parameters and secrets (secrets are never rendered back)."""

    key = forms.CharField(label=gettext_lazy("Store key"), max_length=64)
    name = forms.CharField(label=gettext_lazy("Display name"), max_length=200, required=False)
    workspaces = forms.MultipleChoiceField(label=gettext_lazy("Searched for the requests of"), required=False,
                                           widget=forms.CheckboxSelectMultiple)
    shared = forms.BooleanField(label=gettext_lazy("Shared by every workspace"), required=False)

    def __init__(self, *args, service, **kwargs):
        super().__init__(*args, **kwargs)
        from governance.subjects.models import Workspace

        self.service = service
        self.fields["key"].initial = service.slug
        self.fields["name"].initial = service.name
        self.fields["workspaces"].choices = [(w.slug, w.name) for w in Workspace.objects.order_by("slug")]
        for param in service.params:
            self.fields[f"param_{param.name}"] = forms.CharField(label=param.label, required=param.required,
                                                                 initial=param.default)
        for secret in service.secrets:
            self.fields[f"secret_{secret.name}"] = forms.CharField(
                label=secret.label, widget=forms.PasswordInput(render_value=False),
                help_text=_("Stored encrypted; it is never shown again."))

    def clean_key(self):
        key = self.cleaned_data["key"].strip()
        if not KEY_RE.match(key):
            raise forms.ValidationError(_("Letters, digits, '_' and '-', starting with a letter."))
        if Store.objects.filter(key=key).exists():
            raise forms.ValidationError(_("A store with this key is already in the data map."))
        return key

    def clean(self):
        data = super().clean()
        if data.get("shared") and data.get("workspaces"):
            raise forms.ValidationError(_("Choose workspaces or shared, not both."))
        return data

    def values(self, prefix: str) -> dict:
        return {name[len(prefix):]: value for name, value in self.cleaned_data.items() if name.startswith(prefix)}


def catalogue_index(request):
    _require(request, "datamap.view_store")
    stores = Store.objects.filter(source_file__startswith="catalogue:").order_by("key")
    return TemplateResponse(request, "admin/dsr/catalogue/index.html", _context(
        request, _("Connector catalogue"), services=list(catalogue_services().values()), stores=stores))


def catalogue_add(request, slug: str):
    _require(request, "datamap.add_store")
    try:
        service = catalogue_service(slug)
    except CatalogueError:
        raise Http404 from None
    form = CatalogueStoreForm(request.POST or None, service=service)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            load = catalogue_store_add(
                slug=slug, key=data["key"], params=form.values("param_"), secrets=form.values("secret_"),
                workspaces=data["workspaces"], shared=True if data["shared"] else None, name=data["name"],
                actor=request.user)
        except DataMapInvalid as exc:
            problems = [f"{p.path}: {p.message}" for p in exc.problems]
        except CatalogueError as exc:
            problems = [str(exc)]
        else:
            for warning in load.warnings:
                messages.warning(request, f"{warning.path}: {warning.message}")
            messages.success(request, _("%(service)s was added to the data map as %(key)s.")
                             % {"service": service.name, "key": data["key"]})
            return redirect(reverse("dsr-catalogue-store", args=[data["key"]]))
    return TemplateResponse(request, "admin/dsr/catalogue/add.html", _context(
        request, _("Add %(service)s") % {"service": service.name}, service=service, form=form, problems=problems))


def catalogue_store(request, key: str):
    _require(request, "datamap.view_store")
    store = Store.objects.filter(key=key).prefetch_related("collections__fields").first()
    if store is None:
        raise Http404
    result = None
    if request.method == "POST":
        _require(request, "datamap.change_store")
        result = store_connection_test(store=store)
        (messages.success if result.ok else messages.error)(
            request, (_("Connection works: %(message)s") if result.ok else _("Connection failed: %(message)s"))
            % {"message": result.message})
        return redirect(reverse("dsr-catalogue-store", args=[key]))
    slug = store.source_file.removeprefix("catalogue:") if store.source_file.startswith("catalogue:") else ""
    service = catalogue_services().get(slug)
    return TemplateResponse(request, "admin/dsr/catalogue/store.html", _context(
        request, _("Store %(key)s") % {"key": key}, store=store, service=service,
        secret_names=sorted(store.secret_values()), collections=store.collections.all()))
