"""Templates and static files of the portal.

``dsr.portal`` is a sub-package, not an installed app, so Django's app loaders do not see its
``templates/`` and ``static/`` folders. A dedicated template backend renders them (same options
as the project's), and the stylesheet is served by a small view with a long cache lifetime.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.backends.django import DjangoTemplates
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static" / "portal"
ASSETS = {"portal.css": "text/css; charset=utf-8"}


@lru_cache(maxsize=1)
def engine() -> DjangoTemplates:
    project = settings.TEMPLATES[0]
    return DjangoTemplates({
        "NAME": "mamoru-portal",
        "DIRS": [HERE / "templates", *project.get("DIRS", [])],
        "APP_DIRS": True,
        "OPTIONS": dict(project.get("OPTIONS", {})),
    })


def render(request: HttpRequest, template: str, context: dict | None = None, status: int = 200) -> HttpResponse:
    body = engine().get_template(template).render(context or {}, request)
    return HttpResponse(body, status=status)


@require_GET
def asset(request: HttpRequest, name: str) -> HttpResponse:
    if name not in ASSETS:
        return HttpResponse(status=404)
    response = HttpResponse((STATIC / name).read_bytes(), content_type=ASSETS[name])
    patch_cache_control(response, public=True, max_age=3600)
    return response
