"""Request guards that must run before any view parses the body or the query."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from functools import partial
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext
from django.views.defaults import bad_request

from governance.api.errors import problem_response

# C0 controls and DEL. A path holds none; a query value may hold tab, CR and LF (pasted text),
# never the others: NUL cannot even be stored in PostgreSQL text (a 500 on every filter it reached).
_PATH_CONTROLS = re.compile("[\x00-\x1f\x7f]")
_QUERY_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_QUERY_CONTROLS_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _query_has_controls(query: str) -> bool:
    if "%" not in query:
        return _QUERY_CONTROLS_TEXT.search(query) is not None
    return _QUERY_CONTROLS.search(unquote_to_bytes(query)) is not None


class ControlCharactersMiddleware:
    """Answer 400 ``invalid_character`` to a path or query string holding control characters.

    Before anything reads them (the consent check's fast path included): API paths get the problem
    JSON, pages Django's 400 page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        in_path = _PATH_CONTROLS.search(request.path_info) is not None
        if in_path or (query and _query_has_controls(query)):
            with translation.override(translation.get_language_from_request(request)):
                return self._refuse(request, in_path)
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, in_path: bool) -> HttpResponse:
        # Runs before LocaleMiddleware: the caller's language is activated around this.
        where = gettext("path") if in_path else gettext("query string")
        detail = gettext("The %(where)s contains a control character (such as NUL).") % {"where": where}
        if request.path_info.startswith("/api/"):
            return problem_response(
                status_code=400, code="invalid_character",
                title=gettext("The request contains characters that are not allowed."), detail=detail,
            )
        return bad_request(request, ValueError(detail))


class DeepInputMiddleware:
    """Answer 400 ``too_deeply_nested`` when a view hits ``RecursionError`` on what it was sent.

    The API's parser limits nesting itself (:mod:`governance.api.parsers`); this is the net for every
    other entry point — an admin form's JSON field (``[[[…]]]`` 1,000 deep) would otherwise be a 500.
    The view's transaction (the admin's ``atomic``) has rolled back by the time it gets here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RecursionError):
            return None
        detail = gettext("The input is nested too deeply.")
        if request.path_info.startswith("/api/"):
            return problem_response(status_code=400, code="too_deeply_nested",
                                    title=gettext("The input is nested too deeply."), detail=detail)
        return bad_request(request, ValueError(detail))


class RequestBodyLimitMiddleware:
    """Reject API bodies larger than ``MAMORU_API_MAX_BODY_BYTES`` with 413 before reading them.

    A chunked body (``Transfer-Encoding: chunked``, no ``Content-Length``) is read here when the
    server de-chunks it (``wsgi.input_terminated``, as gunicorn does) — up to the same limit — and
    handed on with its length; Django alone would read it as empty. A server that cannot end the
    stream gets 411 ``length_required``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get(
            "CONTENT_LENGTH"
        ):
            with translation.override(translation.get_language_from_request(request)):
                refused = _chunked_body_take(request)
            if refused is not None:
                return refused
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


def _chunked_body_take(request: HttpRequest) -> HttpResponse | None:
    """Read a chunked body into the request (``None``), or the response refusing it."""
    api = request.path.startswith("/api/")
    limit = settings.MAMORU_API_MAX_BODY_BYTES
    stream = request.environ.get("wsgi.input") if hasattr(request, "environ") else None
    if stream is None or not request.environ.get("wsgi.input_terminated"):
        detail = gettext("A body without Content-Length cannot be read here; send Content-Length.")
        if api:
            return problem_response(status_code=411, code="length_required",
                                    title=gettext("Content-Length required."), detail=detail)
        return HttpResponse(detail, status=411, content_type="text/plain; charset=utf-8")
    body = stream.read(limit + 1)
    if len(body) > limit:
        detail = gettext("The body has more than %(limit)d bytes; the limit is %(limit)d.") % {"limit": limit}
        if api:
            return problem_response(status_code=413, code="body_too_large",
                                    title=gettext("Request body too large."), detail=detail)
        return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._stream = io.BytesIO(body)
    return None


# Attributes that middleware hangs on the request and that point back at it: the lazy user's
# closure and ``auser`` (AuthenticationMiddleware), the message storage (MessageMiddleware), the
# lazy CSP nonce (CSPMiddleware: a partial over the request). Left alone, every request ends as a
# reference cycle of ~40 objects that only the garbage collector frees (a young-generation
# collection every ~15 requests, 0.5–2.7 ms on the benchmark machine, on every endpoint).
_BACK_REFERENCES = ("user", "auser", "_cached_user", "_acached_user", "_messages", "csp_nonce")


class ReleaseRequestMiddleware:
    """Break the request's reference cycles once the response has been sent (``close()``), so
    reference counting frees each request at once instead of the cyclic garbage collector.

    Outermost in ``MIDDLEWARE``; the view, every middleware and the server are done with the
    request by then (streaming responses close after their last chunk). Plain Django views (the
    consent check) then leave no cyclic garbage at all; DRF views still do (the view and its
    request point at each other, serializer fields at their parents).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response._resource_closers.append(partial(_release, request.__dict__))
        return response


def _release(attributes: dict) -> None:
    for name in _BACK_REFERENCES:
        attributes.pop(name, None)
