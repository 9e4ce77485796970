"""URL map. Apps contribute ``api_urls.py`` (mounted at ``/api/v1/``) and ``web_urls.py`` (at ``/``).

An ``api_urls`` module may also name ``hot_urlpatterns``: endpoints called on every page view of a
customer's website (the consent check). They are tried first, before the admin and the other
apps' routes, so resolving them does not walk every nested include.
"""

from importlib import import_module
from importlib.util import find_spec

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from governance.observability.health import healthz, readyz
from governance.observability.metrics import metrics_view

# Packages whose api_urls / web_urls modules are mounted when present (an app's sub-package, such as
# the portal in dsr.portal, mounts its own when its app is installed).
FEATURE_PACKAGES = [
    "governance.subjects", "governance.access", "governance.pii", "governance.datamap",
    "consent", "dsr", "dsr.portal", "oversight",
]


def _installed(package: str) -> bool:
    return any(package == app or package.startswith(app + ".") for app in settings.INSTALLED_APPS)


def _app_modules(module_suffix: str) -> list:
    found = []
    for package in FEATURE_PACKAGES:
        if not _installed(package) or find_spec(package) is None:
            continue
        name = f"{package}.{module_suffix}"
        if find_spec(name) is not None:
            found.append(import_module(name))
    return found


def _app_urls(module_suffix: str) -> list:
    return [path("", include(module)) for module in _app_modules(module_suffix)]


def _hot_api_urls() -> list:
    # Flattened to full paths at the top level: one pattern match, no nested resolver.
    return [
        path(f"api/v1/{p.pattern}", p.callback, name=p.name)
        for module in _app_modules("api_urls") for p in getattr(module, "hot_urlpatterns", [])
    ]


admin.site.site_header = _("Mamoru privacy governance")
admin.site.site_title = _("Mamoru")
admin.site.index_title = _("Privacy dashboard")

# Under /api/ a malformed id or an unknown path answers a problem JSON, not Django's HTML page.
handler400 = "governance.api.errors.bad_request_handler"
handler404 = "governance.api.errors.not_found_handler"

urlpatterns = [
    *_hot_api_urls(),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include(_app_urls("api_urls"))),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    *_app_urls("web_urls"),
]
