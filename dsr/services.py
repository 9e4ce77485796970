"""Data-subject request use cases: submit, verify, approve, deny, extend, retry, complete; and
the team's work on a request: assign, notes, messages to and from the person (paused clock).

Each use case runs in one transaction, records a timeline event and an audit entry inside it,
and sends mail only after commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import smtplib
import unicodedata
from datetime import timedelta

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.freetext import freetext_mask
from audit.services import CREATE, UPDATE, change_record
from dsr import deadlines
from dsr.execution import dispatch, event_add, plan_create, plan_refresh, request_advance
from dsr.models import (
    OPEN_STATUSES,
    Channel,
    DataSubjectRequest,
    InformationReason,
    MessageDirection,
    MessageKind,
    RequestMessage,
    RequestNote,
    RequestStatus,
    RequestTask,
    RequestType,
    TaskStatus,
    WorkspaceDsrPolicy,
)
from governance.api.errors import Conflict, DomainError
from governance.crypto import envelope
from governance.crypto.blind_index import blind_index
from governance.subjects.identities import email_requester_canonical
from governance.subjects.models import Jurisdiction, Workspace

ERR_TYPE = "Unknown request type."
ERR_CODE = "The code is wrong or has expired."
ERR_CODE_LOCKED = "Too many wrong codes: submit the request again to receive a new code."
ERR_STATE = "The request cannot do this in its current state."
ERR_REASON = "Give a reason of at least 10 characters."
ERR_EXTENDED = "The deadline was already extended once."
ERR_DETAILS = "The request details are not valid."
ERR_POINTS = ("Requests for specific pieces of information (CCPA) need two more matching data points "
              "(phone, full_name, postal_code or birth_date in details.verification) and "
              "details.declaration_signed.")
MAX_DETAILS_BYTES = 16_000
ERR_MAIL_NOT_SENT = _("The confirmation code could not be e-mailed to this address; nothing was sent.")


class DsrInvalid(DomainError):
    code = "dsr_invalid"
    title = _("The data-subject request is not valid.")


class VerificationFailed(DomainError):
    status_code = 400
    code = "verification_failed"
    title = _("The identity could not be verified.")


class InvalidTransition(Conflict):
    code = "invalid_state"
    title = _("The request is not in a state that allows this.")


def _code_ttl() -> timedelta:
    return timedelta(minutes=getattr(settings, "MAMORU_DSR_CODE_TTL_MINUTES", 15))


def _code_hash(request: DataSubjectRequest, code: str) -> str:
    key = hashlib.sha256(b"mamoru-dsr-code:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, f"{request.id}:{code}".encode(), hashlib.sha256).hexdigest()


def _type_label(request: DataSubjectRequest):
    # Lazy: rendered in the recipient's language by the mail template.
    return RequestType(request.request_type).label


def _language(locale: str | None) -> str:
    return "ja" if (locale or "").lower().startswith("ja") else "en"


def _validate_details(request_type: str, details: dict | None) -> dict:
    details = dict(details or {})
    if len(json.dumps(details, default=str)) > MAX_DETAILS_BYTES:
        raise DsrInvalid(f"{ERR_DETAILS} (larger than {MAX_DETAILS_BYTES} bytes)", code="details_too_large")
    if request_type == RequestType.RECTIFICATION:
        changes = details.get("changes")
        if not isinstance(changes, list) or not changes or not all(
            isinstance(c, dict) and ("category" in c or "field" in c) and "value" in c for c in changes
        ):
            raise DsrInvalid(
                f"{ERR_DETAILS} Rectification needs details.changes: "
                '[{"category": "user.contact.address", "value": "…"}] (or "field": "store.collection.field").',
                code="rectification_changes_required",
            )
    purposes = details.get("purposes")
    if purposes is not None and (not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes)):
        raise DsrInvalid(f"{ERR_DETAILS} details.purposes is a list of purpose codes.", code="purposes_invalid")
    return details


class MailNotSent(DomainError):
    status_code = 503
    code = "mail_not_sent"
    title = _("The confirmation e-mail could not be sent.")


# What a mail backend raises for a message it cannot send (refused address, server down, an
# address it cannot encode).
MAIL_FAILURES = (smtplib.SMTPException, OSError, UnicodeError, ValueError)


def _send_code(request: DataSubjectRequest, *, first: bool) -> None:
    """Store a fresh code's hash now; e-mail the code once this transaction commits, then record
    truthfully whether it went: ``code_sent`` (and, the first time, the acknowledgement of receipt),
    or ``code_not_sent`` and :class:`MailNotSent` (503): a first code that never left closes the
    request (nobody could verify it); after a failed resend the person may ask for another code."""
    from dsr.notifications import mail_subject

    code = f"{secrets.randbelow(10**6):06d}"
    request.code_hash = _code_hash(request, code)
    request.code_expires_at = timezone.now() + _code_ttl()
    request.code_attempts = 0
    request.save(update_fields=["code_hash", "code_expires_at", "code_attempts"])
    due = request.due_at
    minutes = int(_code_ttl().total_seconds() // 60)

    def deliver() -> None:
        try:
            mail_subject(request=request, template="code", code=code, minutes=minutes, due=due,
                         type_label=_type_label(request))
        except MAIL_FAILURES as exc:
            _code_not_sent(request, first=first, reason=type(exc).__name__)
            raise MailNotSent(str(ERR_MAIL_NOT_SENT)) from None
        with transaction.atomic():
            if first:
                # The confirmation mail also acknowledges receipt (CCPA §7021: within 10 business days).
                request.acknowledged_at = timezone.now()
                request.save(update_fields=["acknowledged_at"])
                event_add(request, "code_sent", "confirmation code e-mailed (acknowledges receipt)")
            else:
                event_add(request, "code_sent", "confirmation code e-mailed again")

    transaction.on_commit(deliver)


def _code_not_sent(request: DataSubjectRequest, *, first: bool, reason: str) -> None:
    with transaction.atomic():
        locked = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if locked.code_hash == request.code_hash:  # the code that failed is still the current one
            locked.code_hash, locked.code_expires_at = "", None
            locked.save(update_fields=["code_hash", "code_expires_at"])
        event_add(locked, "code_not_sent", f"confirmation code could not be e-mailed ({reason})")
        if first and locked.status == RequestStatus.PENDING_VERIFICATION:
            locked.status = RequestStatus.REJECTED
            locked.rejection_reason = "The confirmation code could not be e-mailed."
            locked.completed_at = timezone.now()
            locked.keep_until = locked.completed_at + relativedelta(months=_record_months())
            locked.save(update_fields=["status", "rejection_reason", "completed_at", "keep_until"])
            event_add(locked, "rejected", "closed: the confirmation code could not be e-mailed")
            change_record(actor=None, obj=locked, action=UPDATE, fields=["status", "rejection_reason"],
                          note="closed: the confirmation code could not be e-mailed")
            _data_destroy_on_commit(locked)
    for name in ("status", "code_hash", "code_expires_at", "rejection_reason", "completed_at", "keep_until"):
        setattr(request, name, getattr(locked, name))


def dsr_request_submit(
    *, workspace: Workspace, request_type: str, email: str, locale: str = "en",
    jurisdiction: str | None = None, channel: str = "portal", details: dict | None = None, actor=None,
    all_workspaces: bool = False, public_base_url: str = "",
) -> DataSubjectRequest:
    """Record a request and e-mail a confirmation code (the same whether or not we know the address).

    ``all_workspaces``: the person did not choose a brand; the request searches every workspace's
    stores (``workspace`` then only sets the defaults: jurisdiction, approval policy).
    ``public_base_url``: ``scheme://host`` the request came in through (governance.links), for the
    links mailed later when ``MAMORU_PUBLIC_URL`` is unset.
    """
    if request_type not in RequestType.values:
        raise DsrInvalid(f"{ERR_TYPE} Known: {', '.join(RequestType.values)}", code="unknown_request_type")
    if jurisdiction is not None and jurisdiction not in Jurisdiction.values:
        raise DsrInvalid(f"Unknown jurisdiction. Known: {', '.join(Jurisdiction.values)}", code="unknown_jurisdiction")
    if channel not in Channel.values:
        raise DsrInvalid(f"Unknown channel. Known: {', '.join(Channel.values)}", code="unknown_channel")
    normalized = email_requester_canonical(email)  # == normalize_identity(kind="email"), public domains only
    details = _validate_details(request_type, details)
    region = jurisdiction or workspace.default_jurisdiction
    now = timezone.now()
    with transaction.atomic():
        request = DataSubjectRequest(
            workspace=workspace, all_workspaces=all_workspaces, request_type=request_type,
            status=RequestStatus.RECEIVED,
            jurisdiction=region, locale=_language(locale), channel=channel,
            data_key_id=envelope.data_key_create(owner="dsr.request"),
            email_index=blind_index(kind="dsr-email", value=normalized),
            due_at=deadlines.due_at(jurisdiction=region, received_at=now),
            acknowledge_due_at=deadlines.acknowledge_due_at(jurisdiction=region, received_at=now),
            created_by=actor if getattr(actor, "pk", None) else None,
            public_base_url=public_base_url[:255],
        )
        # As typed (mailbox local parts may be case-sensitive); the index is of the canonical form.
        request.email = unicodedata.normalize("NFKC", email).strip()
        request.details = json.dumps(details)
        request.masking_secret = secrets.token_hex(32)
        request.save()
        event_add(request, "received", f"{request_type} request received via {channel}", actor=actor)
        request.status = RequestStatus.PENDING_VERIFICATION
        request.save(update_fields=["status"])
        change_record(actor=actor, obj=request, action=CREATE, fields=["email", "details"],
                      note=f"DSR submitted via {channel}")
        _send_code(request, first=True)  # after the commit, then code_sent / code_not_sent
    return request


def dsr_request_resend_code(*, request: DataSubjectRequest) -> DataSubjectRequest:
    """Send a fresh code (the old one stops working)."""
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if request.status != RequestStatus.PENDING_VERIFICATION:
            raise InvalidTransition(ERR_STATE)
        _send_code(request, first=False)
    return request


def dsr_request_verify(*, request: DataSubjectRequest, code: str) -> DataSubjectRequest:
    """Check the e-mailed code (hashed, short-lived, limited attempts, constant-time compare)."""
    max_attempts = getattr(settings, "MAMORU_DSR_CODE_MAX_ATTEMPTS", 5)
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if request.status != RequestStatus.PENDING_VERIFICATION:
            raise VerificationFailed(ERR_STATE, code="not_pending_verification")
        if request.code_attempts >= max_attempts:
            raise VerificationFailed(ERR_CODE_LOCKED, code="too_many_attempts")
        expected = request.code_hash
        given = _code_hash(request, str(code or "").strip())
        fresh = request.code_expires_at is not None and request.code_expires_at > timezone.now()
        ok = bool(expected) and hmac.compare_digest(expected, given) and fresh
        points_missing = ok and not _ccpa_points_match(request)
        if not ok or points_missing:
            request.code_attempts += 1
            request.save(update_fields=["code_attempts"])
            event_add(request, "verification_failed",
                      "code right, but too few matching data points (CCPA)" if points_missing
                      else f"wrong or expired code (attempt {request.code_attempts})")
        if ok and not points_missing:
            now = timezone.now()
            request.code_hash = ""
            request.code_expires_at = None
            request.status = RequestStatus.VERIFIED
            request.verified_at = now
            from governance.subjects.selectors import profile_get_by_identity

            request.profile = profile_get_by_identity(workspace=request.workspace, kind="email", value=request.email)
            request.save()
            event_add(request, "verified", "identity verified by e-mailed code")
            change_record(actor=None, obj=request, action=UPDATE, fields=["status"], note="verified")
            if _requires_approval(request):
                request.status = RequestStatus.AWAITING_APPROVAL
                request.save(update_fields=["status"])
                event_add(request, "awaiting_approval", "waiting for DPO approval")
            else:
                _start(request, actor=None)
    if points_missing:
        raise VerificationFailed(ERR_POINTS, code="more_data_points_needed")
    if not ok:
        # Raised after the transaction so the attempt counter stays incremented.
        raise VerificationFailed(ERR_CODE, extra={"attempts_left": max(0, max_attempts - request.code_attempts)})
    return request


def _ccpa_points_match(request: DataSubjectRequest) -> bool:
    """CCPA (Cal. Code Regs. §7062): specific pieces of information need the e-mail plus two more
    matching data points and a signed declaration. Other requests pass."""
    details = json.loads(request.details) if request.details else {}
    if not (request.jurisdiction == Jurisdiction.US_CA and details.get("specific_pieces")
            and request.request_type in {RequestType.ACCESS, RequestType.PORTABILITY}):
        return True
    from governance.subjects.selectors import profile_get_by_identity

    profile = profile_get_by_identity(workspace=request.workspace, kind="email", value=request.email)
    given = details.get("verification") or {}
    if profile is None or not details.get("declaration_signed"):
        return False
    matches = 0
    if given.get("phone"):
        try:
            same = profile_get_by_identity(workspace=request.workspace, kind="phone", value=given["phone"],
                                           jurisdiction=request.jurisdiction)
        except DomainError:
            same = None
        matches += int(same is not None and same.pk == profile.pk)
    for name in ("full_name", "postal_code", "birth_date"):
        theirs, ours = str(given.get(name) or "").strip().casefold(), str(getattr(profile, name) or "").strip().casefold()
        matches += int(bool(theirs) and theirs == ours)
    return matches >= 2


def _requires_approval(request: DataSubjectRequest) -> bool:
    policies = {p.request_type: p.requires_approval
                for p in WorkspaceDsrPolicy.objects.filter(workspace=request.workspace)}
    if request.request_type in policies:
        return policies[request.request_type]
    if "" in policies:
        return policies[""]
    return bool(getattr(settings, "MAMORU_DSR_APPROVAL_DEFAULT", False))


def _start(request: DataSubjectRequest, *, actor) -> None:
    request.status = RequestStatus.RUNNING
    request.started_at = timezone.now()
    request.save(update_fields=["status", "started_at"])
    tasks = plan_create(request=request)
    event_add(request, "running", f"execution started: {len(tasks)} nodes planned", actor=actor,
              data={"nodes": [t.key for t in tasks]})
    request_advance(request_id=request.id)


def _locked(request: DataSubjectRequest, allowed: set[str]) -> DataSubjectRequest:
    request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
    if request.status not in allowed:
        raise InvalidTransition(f"{ERR_STATE} (status: {request.status})")
    return request


def dsr_request_approve(*, request: DataSubjectRequest, actor) -> DataSubjectRequest:
    """A DPO lets a verified request run."""
    with transaction.atomic():
        request = _locked(request, {RequestStatus.AWAITING_APPROVAL})
        request.approved_at = timezone.now()
        request.approved_by = actor if getattr(actor, "pk", None) else None
        request.save(update_fields=["approved_at", "approved_by"])
        event_add(request, "approved", "approved", actor=actor)
        change_record(actor=actor, obj=request, action=UPDATE, fields=["status"], note="approved")
        _start(request, actor=actor)
    return request


def dsr_request_deny(*, request: DataSubjectRequest, actor, reason: str) -> DataSubjectRequest:
    """Reject with reasons and tell the person of their right to complain (GDPR Art. 12(4))."""
    from dsr.notifications import mail_subject

    if len((reason or "").strip()) < 10:
        raise DsrInvalid(ERR_REASON, code="reason_required")
    with transaction.atomic():
        request = _locked(request, OPEN_STATUSES - {RequestStatus.RUNNING})
        request.status = RequestStatus.REJECTED
        request.rejection_reason = freetext_mask(reason.strip())  # full text: sealed in the audit entry
        request.completed_at = timezone.now()
        request.keep_until = request.completed_at + relativedelta(months=_record_months())
        request.save()
        event_add(request, "rejected", "rejected with reasons (Art. 12(4))", actor=actor)
        change_record(actor=actor, obj=request, action=UPDATE, fields=["status", "rejection_reason"],
                      note=f"rejected: {reason.strip()}")
        request.paused_at, request.pause_reason = None, ""
        request.save(update_fields=["paused_at", "pause_reason"])
        mail = _deny_mail(request, reason)
        transaction.on_commit(lambda: mail_subject(request=request, **mail))
        # After the mail (it needs the e-mail address): files deleted, data key shredded.
        _data_destroy_on_commit(request)
    return request


def dsr_request_extend(*, request: DataSubjectRequest, actor, reason: str) -> DataSubjectRequest:
    """Extend the deadline once (GDPR +2 months, CCPA +45 days) and tell the person why."""
    from dsr.notifications import mail_subject

    if len((reason or "").strip()) < 10:
        raise DsrInvalid(ERR_REASON, code="reason_required")
    with transaction.atomic():
        request = _locked(request, OPEN_STATUSES)
        if request.extended_at is not None:
            raise InvalidTransition(ERR_EXTENDED, code="already_extended")
        now = timezone.now()
        if now > request.due_at:
            raise InvalidTransition("The deadline has passed: an extension must be notified before it.",
                                    code="deadline_passed")
        request.due_at = deadlines.extended_due_at(jurisdiction=request.jurisdiction, due=request.due_at)
        request.extended_at = now
        request.extension_reason = freetext_mask(reason.strip())  # full text: sealed in the audit entry
        request.save(update_fields=["due_at", "extended_at", "extension_reason"])
        event_add(request, "extended", f"deadline extended to {request.due_at:%Y-%m-%d}", actor=actor)
        change_record(actor=actor, obj=request, action=UPDATE, fields=["due_at", "extension_reason"],
                      note=f"extended: {reason.strip()}")
        mail = _extend_mail(request, reason, due=request.due_at)
        transaction.on_commit(lambda: mail_subject(request=request, **mail))
    return request


def dsr_request_retry(*, request: DataSubjectRequest, actor) -> DataSubjectRequest:
    """Run a request that needs attention again, re-planned with the data map as it is now.

    A fix to the data map (or a store coming back) takes effect: failed and blocked nodes run
    again with a fresh attempt budget, nodes of changed collections are planned anew, and nodes
    whose effects already happened (an erasure that ran) are not repeated (``plan_refresh``).
    """
    with transaction.atomic():
        request = _locked(request, {RequestStatus.NEEDS_ATTENTION})
        changes = plan_refresh(request=request)
        # Nodes queued while the request was paused had their messages skipped: send them again.
        stranded = list(RequestTask.objects.filter(
            request=request, status__in=[TaskStatus.QUEUED, TaskStatus.RETRY_WAIT]).values_list("pk", flat=True))
        dispatch(stranded)
        request.status = RequestStatus.RUNNING
        request.attention_reason = ""
        request.save(update_fields=["status", "attention_reason"])
        event_add(request, "retried", f"{len(changes['reset']) + len(changes['added'])} nodes to run again "
                  f"(data map version {request.plan.get('version', '?')})", actor=actor,
                  data={"nodes": changes["reset"] + changes["added"], "version": request.plan.get("version")})
        change_record(actor=actor, obj=request, action=UPDATE, fields=["status"], note="retried")
        request_advance(request_id=request.id)
    return request


def _record_months() -> int:
    return getattr(settings, "MAMORU_DSR_RECORD_MONTHS", 24)


def request_complete(*, request: DataSubjectRequest) -> None:
    """Close a request whose nodes are all done (called inside ``request_advance``)."""
    from dsr.notifications import mail_subject
    from dsr.selectors import access_package_url

    now = timezone.now()
    tasks = list(request.tasks.all())
    summary: dict = {}
    nodes = _plan_nodes(request)
    for task in tasks:
        phase = summary.setdefault(task.phase, {"nodes": 0, "rows_found": 0, "rows_changed": 0, "categories": []})
        phase["nodes"] += 1
        phase["rows_found"] += task.rows_found or 0
        phase["rows_changed"] += task.rows_changed or 0
        if task.rows_found and task.node in nodes:
            phase["categories"] = sorted(set(phase["categories"]) | nodes[task.node])
    # Counts and categories only: what the record keeps once the request's data is destroyed.
    request.summary = summary
    request.status = RequestStatus.COMPLETED
    request.completed_at = now
    request.keep_until = now + relativedelta(months=_record_months())
    request.save(update_fields=["summary", "status", "completed_at", "keep_until"])
    if request.request_type == RequestType.ERASURE:
        verified = summary.get("verify", {}).get("nodes", 0)
        event_add(request, "erasure_verified",
                  f"verification scan of {verified} collections found nothing identifying left",
                  data=summary.get("verify", {}))
    event_add(request, "completed", "request completed", data=summary)
    change_record(actor=None, obj=request, action=UPDATE, fields=["status"], note="completed")

    from dsr.coverage import request_coverage

    coverage = request_coverage(request=request)  # what was covered and kept, said in the mail

    def notify() -> None:
        url = access_package_url(request=request)
        package = getattr(request, "package", None)
        mail_subject(
            request=request, template="completed", url=url, type_label=_type_label(request),
            erased=request.request_type == RequestType.ERASURE,
            expires=package.expires_at if url and package else None, coverage=coverage,
        )

    transaction.on_commit(notify)
    # After the mail: erasure, rectification and consent requests lose their files and data key
    # now; access and portability requests keep the package (and the key) until the link expires.
    _data_destroy_on_commit(request)
    if request.request_type == RequestType.ERASURE:
        _subject_copies_destroy_on_commit(request)


def _plan_nodes(request: DataSubjectRequest) -> dict[str, set[str]]:
    """Collection address -> the data categories of its fields, from the request's plan snapshot."""
    out: dict[str, set[str]] = {}
    for store in (request.plan or {}).get("stores", []):
        for collection in store.get("collections", []):
            address = f"{collection.get('store') or store.get('key')}.{collection.get('name')}"
            out[address] = {f["category"] for f in collection.get("fields", []) if f.get("category")}
    return out


def _keeps_package(request: DataSubjectRequest) -> bool:
    return request.status == RequestStatus.COMPLETED and request.request_type in {
        RequestType.ACCESS, RequestType.PORTABILITY}


def request_data_destroy(*, request: DataSubjectRequest) -> bool:
    """Destroy what a closed request fetched: its files and data key, or, for an access request
    whose package is still offered, the access-phase files only (the package goes at expiry).

    Idempotent. With the key go the request's encrypted columns (e-mail, details, identity seeds,
    masking key); the record keeps dates, statuses, counts and categories. Returns whether
    anything was destroyed.
    """
    from dsr import files
    from dsr.package import PACKAGE_NAME

    if _keeps_package(request) and not _package_gone(request):
        removed = files.request_files_remove(request.id, keep={PACKAGE_NAME})
        if removed:
            event_add(request, "data_destroyed", f"{removed} access-phase result files deleted "
                      "(the package and its key are destroyed when the link expires)")
        return bool(removed)
    if _data_key_live(request.data_key_id):
        _free_text_scrub(request)  # while the identity seeds can still be read
        files.request_data_destroy(request_id=request.id, dek_id=request.data_key_id)
        event_add(request, "data_destroyed", "request files deleted and data key destroyed "
                  "(counts and categories kept)")
        return True
    files.request_dir_remove(request.id)
    return False


def _free_text_scrub(request: DataSubjectRequest) -> None:
    """Take the person's e-mail addresses and phone numbers out of the free text the record keeps
    (node errors, the attention reason, timeline messages): a store's error message may quote a
    value. What stays is ``[redacted]`` in its place."""
    from governance.logredact import REDACTED, redact_text

    seeds = json.loads(request.seeds) if request.seeds else {}
    values = {v for kind, vs in seeds.items() if kind.split(":")[0] in {"email", "phone"} for v in vs}
    values |= {request.email} if request.email else set()
    values = {v for v in values if len(v) >= 5}
    pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)), re.IGNORECASE)

    def scrub(text: str) -> str:
        return redact_text(pattern.sub(REDACTED, text) if values else text)

    for task in RequestTask.objects.filter(request=request).exclude(error=""):
        if (clean := scrub(task.error)) != task.error:
            RequestTask.objects.filter(pk=task.pk).update(error=clean)
    for event in request.events.all():
        if (clean := scrub(event.message)) != event.message:
            type(event).objects.filter(pk=event.pk).update(message=clean)
    if request.attention_reason and (clean := scrub(request.attention_reason)) != request.attention_reason:
        DataSubjectRequest.objects.filter(pk=request.pk).update(attention_reason=clean)


def _package_gone(request: DataSubjectRequest) -> bool:
    from dsr.models import AccessPackage

    package = AccessPackage.objects.filter(request=request).first()
    return package is None or package.deleted_at is not None or package.expires_at <= timezone.now()


def _data_key_live(dek_id) -> bool:
    from governance.crypto.models import DataKey

    return DataKey.objects.filter(id=dek_id, destroyed_at=None).exists()


def _data_destroy_on_commit(request: DataSubjectRequest) -> None:
    # robust: a failure is logged, not raised; dsr_request_data_sweep (daily) finishes the job.
    transaction.on_commit(lambda: request_data_destroy(request=request), robust=True)


def _subject_copies_destroy_on_commit(request: DataSubjectRequest) -> None:
    """An erasure also destroys what earlier, closed requests of the same person still hold (an
    access package not yet downloaded, the e-mail address under their keys)."""
    from dsr.models import AccessPackage

    def destroy() -> None:
        same = DataSubjectRequest.objects.filter(email_index=request.email_index)
        if not getattr(request, "all_workspaces", False):  # an erasure for one brand stays in its workspace
            same = same.filter(workspace_id=request.workspace_id)
        if request.profile_id:
            same = same | DataSubjectRequest.objects.filter(profile_id=request.profile_id)
        now = timezone.now()
        for other in same.exclude(pk=request.pk).filter(status__in=[RequestStatus.COMPLETED, RequestStatus.REJECTED]):
            AccessPackage.objects.filter(request=other, deleted_at=None).update(deleted_at=now)
            request_data_destroy(request=other)

    transaction.on_commit(destroy, robust=True)


def dsr_deadline_reminders(*, within_days: int | None = None) -> int:
    """E-mail the DPOs about open requests due soon (once per request); return how many."""
    from dsr.notifications import mail_staff

    within = within_days if within_days is not None else getattr(settings, "MAMORU_DSR_REMIND_DAYS", 7)
    now = timezone.now()
    due = DataSubjectRequest.objects.filter(
        status__in=OPEN_STATUSES - {RequestStatus.PENDING_VERIFICATION}, reminded_at=None, paused_at=None,
        due_at__lte=now + timedelta(days=within),
    )
    count = 0
    for request in due:
        with transaction.atomic():
            DataSubjectRequest.objects.filter(pk=request.pk).update(reminded_at=now)
            event_add(request, "reminder", f"due on {request.due_at:%Y-%m-%d}: DPOs reminded")
            transaction.on_commit(lambda r=request: mail_staff(
                request=r, template="reminder", due=r.due_at,
                type_label=_type_label(r), status_label=RequestStatus(r.status).label))
        count += 1
    return count


def dsr_packages_expire(*, now=None) -> int:
    """Shred access packages whose link has expired: the request's files deleted and its data key
    destroyed (the record stays, with counts and categories)."""
    from dsr.models import AccessPackage

    now = now or timezone.now()
    count = 0
    for package in AccessPackage.objects.filter(deleted_at=None, expires_at__lte=now).select_related("request"):
        with transaction.atomic():
            if not AccessPackage.objects.filter(pk=package.pk, deleted_at=None).update(deleted_at=now):
                continue
            event_add(package.request, "package_expired", "access package deleted after the link expired")
        # Nothing to roll back: the link has expired either way.
        request_data_destroy(request=package.request)
        count += 1
    return count


def dsr_request_data_sweep() -> int:
    """Finish destruction that did not run at closing time (the process stopped after the commit);
    return how many requests were cleaned. Run daily with the records purge."""
    from governance.crypto.models import DataKey

    closed = DataSubjectRequest.objects.filter(
        status__in=[RequestStatus.COMPLETED, RequestStatus.REJECTED]).only("id", "data_key_id", "status",
                                                                           "request_type")
    count = 0
    batch: list[DataSubjectRequest] = []

    def flush() -> int:
        live = set(DataKey.objects.filter(id__in=[r.data_key_id for r in batch], destroyed_at=None)
                   .values_list("id", flat=True))
        done = 0
        for request in batch:
            if request.data_key_id in live and request_data_destroy(request=request):
                done += 1
        batch.clear()
        return done

    for request in closed.iterator(chunk_size=500):
        batch.append(request)
        if len(batch) >= 500:
            count += flush()
    return count + flush()


def dsr_records_purge(*, now=None) -> int:
    """Delete request records past their keeping period (24 months, CCPA §7101) and their files."""
    from dsr.files import request_dir_remove

    now = now or timezone.now()
    dsr_packages_expire(now=now)
    dsr_request_data_sweep()
    expired = list(DataSubjectRequest.objects.filter(keep_until__lte=now))
    for request in expired:
        with transaction.atomic():
            request_dir_remove(request.id)
            envelope.data_key_destroy(dek_id=request.data_key_id)
            request.delete()
    return len(expired)


# --- team work: assignee, internal notes, messages to and from the person ---------------------

ERR_ASSIGNEE = "This person cannot be assigned requests (needs the change permission on requests)."
ERR_NOTE = "Write a note (1 to 4,000 characters)."
ERR_MESSAGE = "Write a message (1 to 4,000 characters)."
ERR_INFO_REASON = "Say what the information is needed for (identity or scope)."
ERR_CLOSED = "The request is closed: nothing more can be sent about it."
ERR_NOT_WAITING = "We are not waiting for information from you on this request."
MAX_TEXT = 4000


def _deny_mail(request: DataSubjectRequest, reason: str) -> dict:
    """The rejection e-mail's template and context (the same for the preview and the send)."""
    return {"template": "rejected", "reason": (reason or "").strip(), "type_label": _type_label(request)}


def _extend_mail(request: DataSubjectRequest, reason: str, *, due) -> dict:
    return {"template": "extended", "reason": (reason or "").strip(), "due": due, "type_label": _type_label(request)}


def _message_mail(request: DataSubjectRequest, *, kind: str, body: str, info_reason: str) -> dict:
    from dsr.portal.views import request_token
    from governance.links import absolute_link

    pauses = kind == MessageKind.MORE_INFORMATION and deadlines.clock_pauses(
        jurisdiction=request.jurisdiction, reason=info_reason)
    reply_url = absolute_link(f"/privacy/r/{request_token(request)}/", base=request.public_base_url)
    return {"template": "message", "kind": kind, "body": (body or "").strip(), "pauses": pauses,
            "basis": deadlines.pause_basis(request.jurisdiction), "due": request.due_at,
            "reply_url": reply_url, "type_label": _type_label(request)}


def dsr_mail_preview(*, request: DataSubjectRequest, action: str, reason: str = "", body: str = "",
                     kind: str = MessageKind.MESSAGE, info_reason: str = "") -> dict:
    """Exactly the e-mail the person will receive if staff confirm ``action`` (deny, extend,
    message): subject, body, language. Nothing is stored or sent."""
    from dsr.notifications import mail_subject_render

    if action == "deny":
        mail = _deny_mail(request, reason)
    elif action == "extend":
        mail = _extend_mail(request, reason, due=deadlines.extended_due_at(jurisdiction=request.jurisdiction,
                                                                            due=request.due_at))
    elif action == "message":
        mail = _message_mail(request, kind=kind, body=body, info_reason=info_reason)
    else:
        raise DsrInvalid(f"Unknown action {action!r}. Known: deny, extend, message", code="unknown_action")
    return mail_subject_render(request=request, **mail)


def dsr_assignable_users():
    """Active staff who may work requests (change permission), for the assignee choice."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    perm = Permission.objects.filter(content_type__app_label="dsr", codename="change_datasubjectrequest")
    return (get_user_model().objects.filter(is_active=True, is_staff=True)
            .filter(Q(is_superuser=True) | Q(user_permissions__in=perm) | Q(groups__permissions__in=perm))
            .distinct().order_by("username"))


def _assign(request: DataSubjectRequest, *, actor, assignee, http_request=None) -> bool:
    if (request.assignee_id or None) == (getattr(assignee, "pk", None)):
        return False
    request.assignee = assignee
    request.save(update_fields=["assignee"])
    who = getattr(assignee, "username", None)
    event_add(request, "assigned", f"assigned to {who}" if who else "unassigned", actor=actor,
              data={"assignee": who})
    change_record(actor=actor, obj=request, action=UPDATE, fields=["assignee"], request=http_request,
                  note=f"assigned to {who}" if who else "unassigned")
    return True


def _check_assignee(assignee) -> None:
    if assignee is not None and not dsr_assignable_users().filter(pk=assignee.pk).exists():
        raise DsrInvalid(ERR_ASSIGNEE, code="assignee_not_allowed")


def dsr_request_assign(*, request: DataSubjectRequest, actor, assignee, http_request=None) -> DataSubjectRequest:
    """Give the request to ``assignee`` (``None``: back to the team's queue)."""
    _check_assignee(assignee)
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        _assign(request, actor=actor, assignee=assignee, http_request=http_request)
    return request


def dsr_requests_assign(*, requests, actor, assignee, http_request=None) -> int:
    """Bulk assign: every request in one transaction (all or none); returns how many changed."""
    _check_assignee(assignee)
    changed = 0
    with transaction.atomic():
        for request in DataSubjectRequest.objects.select_for_update().filter(
                pk__in=[r.pk for r in requests]).order_by("pk"):
            changed += _assign(request, actor=actor, assignee=assignee, http_request=http_request)
    return changed


def _free_text(text: str, error: str, code: str) -> str:
    text = (text or "").strip()
    if not text or len(text) > MAX_TEXT:
        raise DsrInvalid(error, code=code)
    return text


def dsr_note_add(*, request: DataSubjectRequest, actor, text: str, http_request=None) -> RequestNote:
    """An internal note: stored masked, the full text sealed under the request's data key."""
    from audit.freetext import freetext_protect

    text = _free_text(text, ERR_NOTE, "note_invalid")
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        protected = freetext_protect(text, subject=request)
        note = RequestNote.objects.create(request=request, author=actor if getattr(actor, "pk", None) else None,
                                          text=protected.masked, text_enc=protected.sealed)
        event_add(request, "note_added", "internal note added", actor=actor, data={"note": note.pk})
        change_record(actor=actor, obj=request, action=UPDATE, fields=["notes"], request=http_request,
                      note=f"internal note {note.pk} added", data={"note": note.pk})
    return note


def dsr_message_send(*, request: DataSubjectRequest, actor, body: str, kind: str = MessageKind.MESSAGE,
                     info_reason: str = "", http_request=None) -> RequestMessage:
    """E-mail the person who asked, in their language; "we need more information" pauses the
    clock where the law allows (dsr.deadlines.clock_pauses) and the e-mail says whether it does."""
    from audit.freetext import freetext_protect
    from dsr.notifications import mail_subject

    body = _free_text(body, ERR_MESSAGE, "message_invalid")
    if kind not in {MessageKind.MESSAGE, MessageKind.MORE_INFORMATION}:
        raise DsrInvalid(f"Unknown message kind. Known: {MessageKind.MESSAGE}, {MessageKind.MORE_INFORMATION}",
                         code="unknown_message_kind")
    if kind == MessageKind.MORE_INFORMATION and info_reason not in InformationReason.values:
        raise DsrInvalid(ERR_INFO_REASON, code="info_reason_required")
    info_reason = info_reason if kind == MessageKind.MORE_INFORMATION else ""
    with transaction.atomic():
        request = _locked(request, OPEN_STATUSES - {RequestStatus.PENDING_VERIFICATION})
        mail = _message_mail(request, kind=kind, body=body, info_reason=info_reason)
        pause = mail["pauses"] and request.paused_at is None
        protected = freetext_protect(body, subject=request)
        message = RequestMessage.objects.create(
            request=request, direction=MessageDirection.OUTBOUND, kind=kind, info_reason=info_reason,
            body=protected.masked, body_enc=protected.sealed, language=_language(request.locale),
            author=actor if getattr(actor, "pk", None) else None, paused_clock=pause)
        fields = ["messages"]
        if pause:
            request.paused_at, request.pause_reason = timezone.now(), info_reason
            request.save(update_fields=["paused_at", "pause_reason"])
            fields += ["paused_at"]
            event_add(request, "clock_paused", f"clock paused: waiting for information ({info_reason}, "
                      f"{deadlines.pause_basis(request.jurisdiction)})", actor=actor, data={"message": message.pk})
        event_add(request, "message_sent", f"{kind} e-mailed to the requester", actor=actor,
                  data={"message": message.pk, "kind": kind})
        change_record(actor=actor, obj=request, action=UPDATE, fields=fields, request=http_request,
                      note=f"{kind} sent to the requester", data={"message": message.pk, "paused": pause})

        def deliver() -> None:
            try:
                mail_subject(request=request, **mail)
            except MAIL_FAILURES as exc:
                with transaction.atomic():
                    RequestMessage.objects.filter(pk=message.pk).update(delivered=False)
                    event_add(request, "message_not_sent", f"message {message.pk} could not be e-mailed "
                              f"({type(exc).__name__})", data={"message": message.pk})
                raise MailNotSent(str(_("The message could not be e-mailed; it is kept on the request."))) from None
            RequestMessage.objects.filter(pk=message.pk).update(delivered=True)

        transaction.on_commit(deliver)
    return message


def dsr_message_reply(*, request: DataSubjectRequest, body: str, http_request=None) -> RequestMessage:
    """The person's answer from the portal; it resumes a paused clock (the deadline moves by the
    time it stood still)."""
    from audit.freetext import freetext_protect

    body = _free_text(body, ERR_MESSAGE, "message_invalid")
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if request.status not in OPEN_STATUSES - {RequestStatus.PENDING_VERIFICATION}:
            raise InvalidTransition(ERR_CLOSED, code="request_closed")
        if not request.messages.filter(direction=MessageDirection.OUTBOUND).exists():
            raise InvalidTransition(ERR_NOT_WAITING, code="no_question_asked")
        protected = freetext_protect(body, subject=request)
        resumed = request.paused_at is not None
        message = RequestMessage.objects.create(
            request=request, direction=MessageDirection.INBOUND, kind=MessageKind.REPLY, body=protected.masked,
            body_enc=protected.sealed, language=_language(request.locale), resumed_clock=resumed)
        fields = ["messages"]
        if resumed:
            now = timezone.now()
            paused_for = max(now - request.paused_at, timedelta(0))
            request.due_at += paused_for
            request.paused_at, request.pause_reason = None, ""
            request.save(update_fields=["due_at", "paused_at", "pause_reason"])
            fields += ["paused_at", "due_at"]
            event_add(request, "clock_resumed", f"clock resumed after {paused_for.days} days "
                      f"{paused_for.seconds // 3600} h; due {request.due_at:%Y-%m-%d %H:%M} UTC",
                      data={"message": message.pk, "paused_seconds": int(paused_for.total_seconds())})
        event_add(request, "reply_received", "the requester replied", data={"message": message.pk})
        change_record(actor=None, obj=request, action=UPDATE, fields=fields, request=http_request,
                      note="reply from the requester (portal)", data={"message": message.pk, "resumed": resumed})
    return message
