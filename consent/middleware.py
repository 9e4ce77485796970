"""The consent check ahead of the general middleware stack.

A website asks ``GET /api/v1/consent/check`` on every page view, with a site key in
``Authorization``. Sessions, CSRF, the auth and message middleware, the audit-log actor and static
files do not apply to such a call, yet together they cost about as much CPU as the check's own
work. :class:`ConsentCheckMiddleware` sits just inside ``SecurityMiddleware`` and answers these
calls with the same function as the URL's view (:func:`consent.api.consent_check_answer`), adding
the headers the skipped middleware would have added, so the response is the same byte for byte
whichever way it was served. Anything else (a browser call with ``Origin``, cookies, staff
credentials, a bad key, any publishable key: it needs an allowed ``Origin``) goes down the stack as
before.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix, reverse
from django.utils import translation

# Added on the way out by the skipped middleware, in their order: LocaleMiddleware (Accept-Language),
# CorsMiddleware (origin) and SessionMiddleware (Cookie: a request with cookies takes the full stack).
VARY = "Accept-Language, origin, Cookie"


class ConsentCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.path: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if self.path is None:
            self.path = _check_path()
        if (request.path_info != self.path or "HTTP_ORIGIN" in meta or meta.get("HTTP_COOKIE")
                or not meta.get("HTTP_AUTHORIZATION", "").startswith("Bearer mc")):
            return self.get_response(request)
        from consent.api import consent_check_answer

        language = (translation.get_language_from_request(request) if "HTTP_ACCEPT_LANGUAGE" in meta
                    else settings.LANGUAGE_CODE)
        with translation.override(language):
            response = consent_check_answer(request)
        if response is None:
            return self.get_response(request)
        response.headers["Content-Length"] = str(len(response.content))  # CommonMiddleware
        response.headers["Vary"] = VARY
        response.headers["Content-Language"] = language
        response.headers["X-Frame-Options"] = "DENY"
        return response


def _check_path() -> str:
    """The check's ``path_info``: its URL without the script prefix (set for this request)."""
    return "/" + reverse("consent-check")[len(get_script_prefix()):]
