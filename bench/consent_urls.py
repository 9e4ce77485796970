"""The project's URLs plus ``/bench/constant``: a bare Django view (the framework's ceiling)."""

from django.http import HttpResponse
from django.urls import include, path


def constant(request):
    return HttpResponse(b'{"ok":true}', content_type="application/json")


urlpatterns = [path("bench/constant", constant), path("", include("governance.urls"))]
