"""The access package download (expiring signed link; every download audited)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from audit.services import access_record
from dsr.execution import event_add
from dsr.models import AccessPackage
from dsr.package import package_stream
from dsr.selectors import package_from_token


@require_GET
def package_download(request: HttpRequest, token: str) -> StreamingHttpResponse:
    package = package_from_token(token=token)
    if package is None:
        raise Http404("This download link is not valid or has expired.")
    with transaction.atomic():
        AccessPackage.objects.filter(pk=package.pk).update(downloads=F("downloads") + 1)
        access_record(actor=request.user if request.user.is_authenticated else None, obj=package.request,
                      fields=["access_package"], reason="access package download by the subject",
                      request=request, via="dsr:package")
        event_add(package.request, "package_downloaded", "access package downloaded")
    response = StreamingHttpResponse(package_stream(package=package), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="my-data-{str(package.request_id)[:8]}.zip"'
    response["Cache-Control"] = "no-store"
    response["Content-Length"] = str(package.size)
    return response
