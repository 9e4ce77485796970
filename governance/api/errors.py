"""One place that turns errors into problem responses ``{"type", "title", "detail", "code"}``.

Domain code raises :class:`DomainError` subclasses (or DRF exceptions); views never build error
bodies by hand. Validation errors keep DRF's per-field detail under ``errors``.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_BASE = "https://mamoru.dev/problems/"


class DomainError(Exception):
    """A business rule said no. Subclasses set ``status_code``, ``code`` and ``title``."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"
    title = _("The request could not be processed.")

    def __init__(self, detail: str | None = None, *, code: str | None = None, extra: dict | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.extra = extra or {}


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    title = _("Not found.")


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    title = _("The request conflicts with the current state.")


def problem(
    *, status_code: int, code: str, title: str, detail: str, extra: dict | None = None
) -> dict[str, Any]:
    body = {"type": PROBLEM_BASE + code, "title": title, "detail": detail, "code": code}
    body["status"] = status_code
    if extra:
        body.update(extra)
    return _encodable(body)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(value: Any) -> Any:
    """``value`` with lone surrogates (which no UTF-8 response can hold) as U+FFFD: a problem that
    echoes the caller's input always renders."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    return value


def problem_response(
    *, status_code: int, code: str, title: str, detail: str, extra: dict | None = None
) -> JsonResponse:
    """A problem response for plain Django views and middleware."""
    return JsonResponse(
        problem(status_code=status_code, code=code, title=title, detail=detail, extra=extra),
        status=status_code,
        content_type="application/problem+json",
        json_dumps_params={"ensure_ascii": False, "separators": (",", ":")},  # as DRF renders them
        headers=_retry_after(extra),
    )


def _retry_after(extra: dict | None) -> dict[str, str] | None:
    """``Retry-After`` for a problem whose ``extra`` says when to retry (429 and 503 answers)."""
    if extra and extra.get("retry_after") is not None:
        return {"Retry-After": str(int(extra["retry_after"]))}
    return None


def _first_code(detail: Any) -> str:
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_code(value)
    if isinstance(detail, list) and detail:
        return _first_code(detail[0])
    return getattr(detail, "code", None) or "invalid"


def _title(exc: Exception) -> str:
    """DRF's default message without its placeholders (``Method "{method}" not allowed.``): the
    request's own values are in ``detail``."""
    title = str(getattr(exc, "default_detail", "Error"))
    if "{" in title:
        title = re.sub(r'\s*"?\{\w+\}"?', "", title).strip()
    return title


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler producing problem objects with a machine-readable ``code``."""
    if isinstance(exc, DomainError):
        body = problem(
            status_code=exc.status_code, code=exc.code, title=exc.title, detail=exc.detail,
            extra=exc.extra,
        )
        return Response(body, status=exc.status_code, content_type="application/problem+json",
                        headers=_retry_after(exc.extra))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = problem(
            status_code=response.status_code,
            code=_first_code(exc.detail) if _first_code(exc.detail) != "invalid" else "validation_error",
            title=_("The request body or parameters are not valid."),
            detail="See 'errors' for the fields that failed validation.",
            extra={"errors": response.data},
        )
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        code = getattr(getattr(exc, "detail", None), "code", None) or getattr(
            exc, "default_code", "error"
        )
        body = problem(
            status_code=response.status_code,
            code=str(code),
            title=_title(exc),
            detail=str(detail),
        )
    response.data = body
    response.content_type = "application/problem+json"
    return response


def _page_or_problem(request, exception, *, status_code: int, code: str, title: str, detail: str, page):
    if request.path_info.startswith("/api/"):
        return problem_response(status_code=status_code, code=code, title=str(title), detail=detail)
    return page(request, exception)


def not_found_handler(request, exception=None):
    """``handler404``: under ``/api/`` a problem (``not_found``) — a malformed id such as
    ``/api/v1/profiles/abc/`` matches no route — elsewhere Django's page."""
    from django.views.defaults import page_not_found

    return _page_or_problem(request, exception, status_code=404, code="not_found", title=_("Not found."),
                            detail=str(_("No resource at this address.")), page=page_not_found)


def bad_request_handler(request, exception=None):
    """``handler400`` (a disallowed host, a suspicious request): a problem under ``/api/``."""
    from django.views.defaults import bad_request

    return _page_or_problem(request, exception, status_code=400, code="bad_request",
                            title=_("Bad request."), detail=str(_("The request could not be understood.")),
                            page=bad_request)
