"""Request guards that must run before any view parses the body."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from governance.api.errors import problem_response


class RequestBodyLimitMiddleware:
    """Reject API bodies larger than ``MAMORU_API_MAX_BODY_BYTES`` with 413 before reading them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return problem_response(
                    status_code=400, code="bad_content_length", title="Bad Content-Length.",
                    detail="The Content-Length header is not a number.",
                )
            limit = settings.MAMORU_API_MAX_BODY_BYTES
            if length > limit:
                return problem_response(
                    status_code=413,
                    code="body_too_large",
                    title="Request body too large.",
                    detail=f"The body has {length} bytes; the limit is {limit}.",
                )
        return self.get_response(request)
