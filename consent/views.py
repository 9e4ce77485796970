"""HTML pages: receipt copy for the person, preference centre, and /.well-known/gpc.json."""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import translation
from django.views.decorators.cache import cache_control
from django.views.decorators.clickjacking import xframe_options_exempt

from consent.authentication import page_token_create
from consent.models import ConsentEvent, Site
from consent.receipts import receipt_json, receipt_token_valid

GPC_LAST_UPDATE = "2026-11-22"


@cache_control(public=True, max_age=86400)
def gpc_well_known(request: HttpRequest) -> JsonResponse:
    """Declare that Mamoru-backed sites honour Global Privacy Control."""
    return JsonResponse({"gpc": True, "lastUpdate": getattr(settings, "MAMORU_GPC_LAST_UPDATE", GPC_LAST_UPDATE)})


def receipt_page(request: HttpRequest, record_id) -> HttpResponse:
    """The person's human-readable copy of a consent receipt (link carries a signed token)."""
    if not receipt_token_valid(str(record_id), request.GET.get("t", "")):
        raise Http404("No such receipt.")
    event = get_object_or_404(ConsentEvent.objects.select_related("purpose", "site", "workspace"), pk=record_id)
    receipt = receipt_json(event=event)
    if (event.language or "").startswith("ja"):
        translation.activate("ja")
    return render(request, "consent/receipt.html", {"receipt": receipt, "event": event})


@xframe_options_exempt
def preference_centre(request: HttpRequest, site_slug: str) -> HttpResponse:
    """A page listing the site's purposes with toggles, working through the consent API."""
    site = get_object_or_404(Site.objects.select_related("workspace"), slug=site_slug)
    lang = request.GET.get("lang") or translation.get_language() or "en"
    lang = "ja" if lang.startswith("ja") else "en"
    translation.activate(lang)
    response = render(request, "consent/preferences.html", {
        "site": site, "lang": lang, "token": page_token_create(site=site),
        "browser_id": request.GET.get("browser_id", ""),
        "purposes": ",".join(site.purposes.values_list("code", flat=True)),
    })
    # Framed by the site's own pages only (Content-Security-Policy; X-Frame-Options is off here).
    response._csp_replace = {"frame-ancestors": ["'self'", *site.allowed_origins]}
    return response


@cache_control(public=True, max_age=300)
def consent_script(request: HttpRequest) -> FileResponse:
    """Serve mamoru-consent.js at a stable URL (also available under /static/)."""
    path = finders.find("consent/mamoru-consent.js")
    if not path:
        raise Http404
    response = FileResponse(open(path, "rb"), content_type="application/javascript; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    return response
