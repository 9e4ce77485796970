"""Portal pages. Plain HTML forms (no JavaScript needed), CSRF-protected, rate-limited.

A request is addressed by a signed token in the URL, never by its id alone; the answer to a
submission is the same whether or not we know the e-mail address (no account enumeration).
"""

from __future__ import annotations

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from dsr.models import DataSubjectRequest, RequestStatus
from dsr.portal.forms import ReplyForm, RequestForm, VerifyForm
from dsr.portal.rendering import render
from dsr.throttles import (
    SCOPE_CODE_MAIL,
    code_mail_throttle,
    portal_submit_throttle,
    portal_verify_throttle,
)
from governance.access.throttling import RateLimited, RateLimitUnavailable
from governance.api.errors import DomainError
from governance.links import public_base_url
from governance.subjects.models import Workspace

TOKEN_SALT = "dsr.portal.request"
TOKEN_MAX_AGE = 400 * 86400  # longer than any deadline plus the record-keeping of the status page

EVENT_LABELS = {
    "received": _("Request received"),
    "code_sent": _("Confirmation code e-mailed"),
    "verified": _("Identity verified"),
    "awaiting_approval": _("Waiting for review by our privacy team"),
    "approved": _("Approved by our privacy team"),
    "started": _("Processing started"),
    "extended": _("Deadline extended"),
    "denied": _("Request declined"),
    "rejected": _("Request declined"),
    "completed": _("Completed"),
    "package_ready": _("Your data package is ready"),
    "package_downloaded": _("Data package downloaded"),
    "message_sent": _("We wrote to you"),
    "clock_paused": _("Waiting for your answer (our deadline is paused)"),
    "reply_received": _("We received your answer"),
    "clock_resumed": _("Our deadline runs again"),
}
STATUS_HELP = {
    RequestStatus.PENDING_VERIFICATION: _("Enter the code we e-mailed you to confirm the request."),
    RequestStatus.VERIFIED: _("Your identity is confirmed; processing starts shortly."),
    RequestStatus.AWAITING_APPROVAL: _("Our privacy team reviews your request before processing it."),
    RequestStatus.RUNNING: _("We are processing your request in our systems."),
    RequestStatus.NEEDS_ATTENTION: _("We are processing your request in our systems."),
    RequestStatus.COMPLETED: _("Your request is complete."),
    RequestStatus.REJECTED: _("We could not carry out your request; the reason is below."),
}


class _ReceiptSigner(signing.TimestampSigner):
    """Signs with the request's receipt time instead of now: one request, one link (the e-mail a
    preview showed carries the same link as the one then sent), valid TOKEN_MAX_AGE from receipt."""

    def __init__(self, *, at, **kwargs):
        super().__init__(**kwargs)
        self._at = at

    def timestamp(self) -> str:
        return signing.b62_encode(int(self._at.timestamp()))


def request_token(req: DataSubjectRequest) -> str:
    return _ReceiptSigner(at=req.received_at or timezone.now(), salt=TOKEN_SALT).sign_object(str(req.pk))


def request_from_token(token: str) -> DataSubjectRequest:
    try:
        request_id = signing.loads(token, salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        raise Http404 from None
    req = DataSubjectRequest.objects.select_related("workspace").filter(pk=request_id).first()
    if req is None:
        raise Http404
    return req


def throttled(form, exc: RateLimited | RateLimitUnavailable, *, field: str | None = None) -> int:
    """Put a rate limit on the form as an error; the status code the page is answered with."""
    if isinstance(exc, RateLimitUnavailable):
        form.add_error(None, gettext("We cannot accept this right now. Please try again in a minute."))
        return 503
    minutes = max(1, -(-exc.retry_after // 60))
    wait = ngettext("Please try again in %(n)d minute.", "Please try again in %(n)d minutes.", minutes) % {"n": minutes}
    if field == "email":
        form.add_error("email", gettext("Too many confirmation codes were sent to this address.") + " " + wait)
    elif field == "code":
        form.add_error("code", gettext("Too many attempts from your network.") + " " + wait)
    else:
        form.add_error(None, gettext("Too many requests from your network.") + " " + wait)
    return 429


def _with_retry_after(response: HttpResponse, exc: RateLimited | RateLimitUnavailable) -> HttpResponse:
    response["Retry-After"] = str(exc.retry_after)
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def request_new(request: HttpRequest, brand: str | None = None) -> HttpResponse:
    """Pick a request type, give an e-mail address; we send a code.

    On a brand's page (``/privacy/<slug>/request/``) the request covers that brand; on the general
    page it covers every brand unless the person picks one.
    """
    from dsr.services import dsr_request_submit

    workspace = get_object_or_404(Workspace, slug=brand) if brand else None
    form = RequestForm(request.POST or None, initial={"request_type": request.GET.get("type")}, brand=workspace)
    if request.method == "POST" and form.is_valid():
        # Per client address, then per e-mail address (codes sent to one mailbox, from anywhere).
        try:
            portal_submit_throttle(request=request)
            code_mail_throttle(email=form.cleaned_data["email"])
        except (RateLimited, RateLimitUnavailable) as exc:
            field = "email" if getattr(exc, "scope", "") == SCOPE_CODE_MAIL else None
            status = throttled(form, exc, field=field)
            return _with_retry_after(_request_page(request, form, workspace, status), exc)
        target, all_workspaces = form.scope()
        try:
            if target is None:
                raise DomainError(gettext("No service is set up yet."), code="no_workspace")
            req = dsr_request_submit(
                workspace=target, all_workspaces=all_workspaces, request_type=form.cleaned_data["request_type"],
                email=form.cleaned_data["email"], locale=translation.get_language() or "en",
                channel="portal", details=form.details(), public_base_url=public_base_url(request),
            )
        except DomainError as exc:
            form.add_error(None, gettext("We could not accept this request: %(reason)s") % {"reason": exc.detail})
        else:
            return redirect("portal:verify", token=request_token(req))
    return _request_page(request, form, workspace)


def _request_page(request: HttpRequest, form, workspace: Workspace | None, status: int = 200) -> HttpResponse:
    return render(request, "portal/request_new.html",
                  {"form": form, "brand": workspace, "brand_count": Workspace.objects.count()}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def request_verify(request: HttpRequest, token: str) -> HttpResponse:
    from dsr.services import VerificationFailed, dsr_request_verify

    req = request_from_token(token)
    if req.status != RequestStatus.PENDING_VERIFICATION:
        return redirect("portal:status", token=token)
    form = VerifyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            portal_verify_throttle(request=request)
        except (RateLimited, RateLimitUnavailable) as exc:
            status = throttled(form, exc, field="code")
            page = render(request, "portal/verify.html", {"form": form, "req": req, "token": token}, status=status)
            return _with_retry_after(page, exc)
        try:
            dsr_request_verify(request=req, code=form.cleaned_data["code"].strip())
        except VerificationFailed as exc:
            left = exc.extra.get("attempts_left") if exc.extra else None
            message = gettext("The code is wrong or has expired.")
            if exc.code == "too_many_attempts":
                message = gettext("Too many wrong codes. Please submit the request again to get a new code.")
            elif left is not None:
                message += " " + gettext("Attempts left: %(n)d.") % {"n": left}
            form.add_error("code", message)
        else:
            return redirect("portal:status", token=token)
    return render(request, "portal/verify.html", {"form": form, "req": req, "token": token})


@never_cache
def request_status(request: HttpRequest, token: str, *, reply_form: ReplyForm | None = None,
                   status: int = 200) -> HttpResponse:
    from dsr.coverage import request_coverage
    from dsr.selectors import access_package_url, dsr_request_progress, dsr_request_timeline

    req = request_from_token(token)
    if req.status == RequestStatus.PENDING_VERIFICATION:
        return redirect("portal:verify", token=token)
    progress = dsr_request_progress(request=req)
    reply_form = reply_form if isinstance(reply_form, ReplyForm) else None
    timeline = [
        {"at": e["at"], "label": EVENT_LABELS[e["kind"]]}
        for e in dsr_request_timeline(request=req) if e["kind"] in EVENT_LABELS
    ]
    working = req.status in (RequestStatus.VERIFIED, RequestStatus.RUNNING, RequestStatus.NEEDS_ATTENTION)
    context = {
        "req": req,
        "token": token,
        "progress": progress,
        "timeline": timeline,
        "status_help": STATUS_HELP.get(req.status, ""),
        "package_url": access_package_url(request=req, base_url=public_base_url(request)),
        "overdue": req.due_at <= timezone.now() and req.paused_at is None
        and req.status not in (RequestStatus.COMPLETED, RequestStatus.REJECTED),
        "replied": request.GET.get("replied") == "1",
        # Without JavaScript, the page reloads itself while work is under way.
        "refresh_seconds": 5 if working else None,
        "status_url": reverse("portal:status", kwargs={"token": token}),
        # Which brands and systems the request covers, what was kept and why (never silent).
        "coverage": request_coverage(request=req),
        **_conversation(req, reply_form),
    }
    if context["reply_form"] is not None:
        context["refresh_seconds"] = None  # never reload the page under someone typing an answer
    return render(request, "portal/status.html", context, status=status)


def _conversation(req: DataSubjectRequest, form: ReplyForm | None) -> dict:
    """The messages with our privacy team (personal data in them masked: this page's address is a
    link, the full text is in the person's e-mail) and the form to answer."""
    from dsr.models import OPEN_STATUSES, MessageDirection

    messages = list(req.messages.all())
    asked = any(m.direction == MessageDirection.OUTBOUND for m in messages)
    can_reply = asked and req.status in OPEN_STATUSES
    return {
        "messages": [{"inbound": m.direction == MessageDirection.INBOUND, "at": m.created_at, "body": m.body,
                      "question": m.kind == "more_information"} for m in messages],
        "waiting_for_answer": req.paused_at is not None,
        "reply_form": (form or ReplyForm()) if can_reply else None,
        "reply_url": reverse("portal:reply", kwargs={"token": _token_of(req)}) if can_reply else "",
    }


def _token_of(req: DataSubjectRequest) -> str:
    return request_token(req)


@never_cache
@require_http_methods(["POST"])
def request_reply(request: HttpRequest, token: str) -> HttpResponse:
    """The person answers our message; a paused deadline runs again (dsr_message_reply)."""
    from dsr.services import dsr_message_reply

    req = request_from_token(token)
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            portal_submit_throttle(request=request)
        except (RateLimited, RateLimitUnavailable) as exc:
            return _with_retry_after(request_status(request, token, reply_form=form,
                                                    status=throttled(form, exc)), exc)
        try:
            dsr_message_reply(request=req, body=form.cleaned_data["body"], http_request=request)
        except DomainError as exc:
            form.add_error(None, gettext("We could not accept this answer: %(reason)s") % {"reason": exc.detail})
        else:
            return redirect(reverse("portal:status", kwargs={"token": token}) + "?replied=1#conversation")
    return request_status(request, token, reply_form=form, status=400)


def privacy_notice(request: HttpRequest) -> HttpResponse:
    """The privacy notice: purposes from the consent catalogue, in the visitor's language."""
    purposes, available = [], False
    from django.apps import apps

    if apps.is_installed("consent"):
        from consent.selectors import purposes_published

        purposes, available = purposes_published(locale=translation.get_language() or "en"), True
    return render(request, "portal/notice.html", {"purposes": purposes, "catalogue": available})


def home(request: HttpRequest, brand: str | None = None) -> HttpResponse:
    workspace = get_object_or_404(Workspace, slug=brand) if brand else None
    return render(request, "portal/home.html", {
        "types": RequestForm.base_fields["request_type"].choices, "brand": workspace,
        "brands": list(Workspace.objects.order_by("name")) if workspace is None else [],
    })
