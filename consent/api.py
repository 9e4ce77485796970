"""Consent API (contract): events, state, check, receipts and the purpose catalogue.

Callers authenticate with a site key (``mcpk_`` publishable for browsers, ``mcsk_`` secret for
servers) or as staff (API token or session, plus ``workspace=<slug>``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from urllib.parse import parse_qsl

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.freetext import freetext_mask
from consent.authentication import (
    SiteCredential,
    SiteKeyAuthentication,
    credential_for,
    credential_forget,
)
from consent.models import ConsentStateValue, IdempotencyRecord, KeyKind, Method
from consent.ratelimit import rate_limit_hit
from consent.receipts import receipt_json, receipt_token
from consent.selectors import (
    CheckResult,
    catalogue,
    consent_check,
    consent_event_get,
    profile_consent_overview,
    purposes_published,
)
from consent.services import (
    MAX_BATCH,
    EventInput,
    KeyScopeError,
    RecordContext,
    batch_rejection,
    consent_events_record,
    consent_gpc_apply,
)
from governance.access.authentication import ApiTokenAuthentication
from governance.api.errors import Conflict, DomainError, NotFound, problem_response
from governance.api.parsers import json_loads
from governance.api.serializers import StrictSerializer
from governance.dbread import read_without_ping
from governance.subjects.models import IdentityKind, Workspace
from governance.subjects.selectors import identity_index

AUTH_CLASSES = [SiteKeyAuthentication, ApiTokenAuthentication]
ERR_WORKSPACE = "Staff callers name the workspace: ?workspace=<slug>."
ERR_IDEMPOTENCY_REUSED = "This Idempotency-Key was used with a different request body."


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    detail = serializers.CharField()
    code = serializers.CharField()
    status = serializers.IntegerField()


PROBLEM_STATUSES = (400, 401, 403, 404, 405, 406, 409, 413, 415, 429)
PROBLEMS = {(status, "application/problem+json"): ProblemSerializer for status in PROBLEM_STATUSES}


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    title = _("Not allowed.")


def _gpc(request: Request) -> bool:
    return request.META.get("HTTP_SEC_GPC") == "1"  # exactly "1" counts (GPC spec)


def _client(request: Request) -> tuple[str, str]:
    return request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_USER_AGENT", "")[:1000]


def _context(request: Request, *, perm: str, params=None) -> RecordContext:
    """Workspace, site and actor of the caller (site key, or staff naming a workspace in the query
    string or, for the ``POST`` forms, in ``params`` from the body)."""
    ip, ua = _client(request)
    auth = request.auth
    if isinstance(auth, SiteCredential):
        return RecordContext(
            workspace=auth.site.workspace, site=auth.site, key_kind=auth.kind,
            actor_label=f"site:{auth.site.slug}:{auth.kind}", ip=ip, user_agent=ua, gpc=_gpc(request),
        )
    user = request.user
    if not user.has_perm(perm):
        raise Forbidden(f"You need the permission {perm}.")
    slug = (params or {}).get("workspace") or request.query_params.get("workspace")
    if not slug:
        raise DomainError(ERR_WORKSPACE, code="workspace_required")
    from governance.access.policy import workspaces_visible_to

    workspace = Workspace.objects.filter(slug=str(slug)).first()
    if workspace is None or (not user.is_superuser and not workspaces_visible_to(user).filter(pk=workspace.pk).exists()
                             and not user.has_perm("consent.view_consentstate")):
        raise DomainError("Unknown workspace.", code="unknown_workspace")
    return RecordContext(
        workspace=workspace, key_kind=KeyKind.SECRET, actor=user, actor_label=f"user:{user.username}",
        ip=ip, user_agent=ua, gpc=_gpc(request),
    )


class StrictCharField(serializers.CharField):
    """A JSON string only (DRF would turn 0 or true into "0" / "True")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictURLField(serializers.URLField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class IdentityQuery(serializers.Serializer):
    identity_kind = serializers.ChoiceField(choices=IdentityKind.choices, required=False)
    identity_value = serializers.CharField(required=False, max_length=320)
    identity_namespace = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
    browser_id = serializers.CharField(required=False, max_length=128)
    workspace = serializers.SlugField(required=False, help_text="Staff callers only.")

    def validate(self, attrs):
        if attrs.get("browser_id"):
            attrs["identity_kind"], attrs["identity_value"] = IdentityKind.BROWSER_ID, attrs["browser_id"]
            attrs["identity_namespace"] = ""
        if not attrs.get("identity_kind") or not attrs.get("identity_value"):
            raise serializers.ValidationError(
                {"identity_kind": "Give identity_kind and identity_value, or browser_id."}, code="identity_required"
            )
        return attrs


def _identity_params(params) -> dict:
    """Identity from query parameters without serializer overhead (the check hot path)."""
    browser_id = params.get("browser_id")
    if browser_id:
        return {"identity_kind": IdentityKind.BROWSER_ID, "identity_value": browser_id, "identity_namespace": ""}
    kind, value = params.get("identity_kind", ""), params.get("identity_value", "")
    if kind not in IdentityKind.values or not value:
        raise DomainError(
            "Give identity_kind (one of " + ", ".join(IdentityKind.values) + ") and identity_value, or browser_id.",
            code="identity_required",
        )
    return {"identity_kind": kind, "identity_value": value, "identity_namespace": params.get("identity_namespace", "")}


def _scope_identity(ctx: RecordContext, kind: str) -> None:
    if ctx.key_kind == KeyKind.PUBLISHABLE and kind != IdentityKind.BROWSER_ID:
        raise KeyScopeError("A publishable key may only record and read consent for a browser id.")


# --- events ----------------------------------------------------------------------------------


class ConsentIdentitySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=IdentityKind.choices)
    value = StrictCharField(max_length=320)
    namespace = StrictCharField(required=False, default="", allow_blank=True, max_length=64)


class EventInSerializer(StrictSerializer):
    identity = ConsentIdentitySerializer(required=False, help_text="Secret keys and staff only.")
    browser_id = StrictCharField(required=False, max_length=128)
    purpose = StrictCharField(max_length=64)
    purpose_version = StrictIntegerField(required=False, min_value=1, max_value=2_000_000)
    state = serializers.ChoiceField(choices=[ConsentStateValue.GIVEN, ConsentStateValue.REFUSED, ConsentStateValue.WITHDRAWN])
    method = serializers.ChoiceField(
        choices=[m for m in Method.values if m != Method.GPC], required=False, default=Method.API
    )
    occurred_at = serializers.DateTimeField(required=False)
    page_url = StrictURLField(required=False, allow_blank=True, max_length=1000)
    notice_url = StrictURLField(required=False, allow_blank=True, max_length=1000)
    language = StrictCharField(required=False, allow_blank=True, max_length=16)
    jurisdiction = serializers.ChoiceField(choices=["EU", "JP", "US-CA", "US", "OTHER"], required=False)
    tcf_string = StrictCharField(required=False, allow_blank=True, max_length=20000)
    gpp_string = StrictCharField(required=False, allow_blank=True, max_length=20000)
    note = StrictCharField(required=False, allow_blank=True, max_length=300,
                           help_text="Free text; e-mails, phone numbers and other personal data are masked.")

    def validate_note(self, value: str) -> str:
        return freetext_mask(value)  # no plaintext personal data in the event chain


class EventBatchInSerializer(serializers.Serializer):
    events = EventInSerializer(many=True, min_length=1, max_length=MAX_BATCH)


class RecordedSerializer(serializers.Serializer):
    record_id = serializers.UUIDField()
    purpose = serializers.CharField()
    purpose_version = serializers.IntegerField()
    state = serializers.CharField()
    method = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    receipt_url = serializers.CharField()


class EventsOutSerializer(serializers.Serializer):
    recorded = serializers.IntegerField()
    events = RecordedSerializer(many=True)
    gpc_events = RecordedSerializer(many=True)


def _raise_item_errors(errors: dict, *, count: int) -> None:
    """Raise the documented ``batch_invalid`` problem (``errors: [{index, code, detail, field}]``)
    when the serializer's errors are about single events; return for anything else."""
    per_item = errors.get("events")
    if isinstance(per_item, list):
        per_item = dict(enumerate(per_item))
    if not isinstance(per_item, dict) or not per_item or not all(isinstance(e, dict) for e in per_item.values()):
        return
    found = []
    for index, item_errors in sorted(per_item.items(), key=lambda pair: int(pair[0])):
        if not item_errors:
            continue
        field, details = next(iter(item_errors.items()))
        while isinstance(details, dict):  # nested (identity.kind)
            sub, details = next(iter(details.items()))
            field = f"{field}.{sub}"
        detail = details[0] if isinstance(details, list) and details else details
        found.append({"index": int(index), "code": getattr(detail, "code", None) or "invalid",
                      "detail": f"{field}: {detail}", "field": field})
    if found:
        raise batch_rejection(found, single=count == 1)


def _recorded(event, codes, receipt_url: str) -> dict:
    record_id = str(event.id)
    return {
        "record_id": record_id, "purpose": codes[event.purpose_id], "purpose_version": event.purpose_version,
        "state": event.state, "method": event.method, "occurred_at": event.occurred_at.isoformat(),
        "receipt_url": receipt_url.replace(_RECORD_ID, record_id),
    }


_RECORD_ID = "00000000-0000-0000-0000-000000000000"  # reversed once per response, then filled in


EVENT_EXAMPLE = {
    "events": [
        {"browser_id": "b-7f3a9c2e41", "purpose": "marketing_email", "state": "given", "method": "banner",
         "page_url": "https://shop.example/", "language": "en"},
        {"identity": {"kind": "email", "value": "hanako@example.jp"}, "purpose": "analytics",
         "state": "refused", "method": "form",
         "tcf_string": "COw4XqLOw4XqLAAAAAENAXCAAP-gAAAfwIAAACngAI8AEFABgACAA4A.IAPPwAA"},
    ]
}


class ConsentEventsView(APIView):
    """Record consent events (one, or a batch of up to 500)."""

    authentication_classes = AUTH_CLASSES

    @extend_schema(
        operation_id="consent_events_record",
        summary="Record consent events",
        description=(
            "Body: a batch `{\"events\": [...]}` (1–500) or a single event object. **All or nothing**: "
            "if any item is invalid, nothing is recorded and the 400 answer lists `errors` with each "
            "bad item's `index` and `code`. `Idempotency-Key`: a replay with the same body returns the "
            "first answer (header `Idempotent-Replayed: true`); the same key with another body is 409. "
            "`Sec-GPC: 1` records an opt-out of sale/sharing purposes (method `gpc`) unless the person "
            "explicitly opted in after the signal was first seen. Publishable keys may only use `browser_id`; "
            "`identity` and `browser_id` together (secret key) link an anonymous browser to a known person."
        ),
        parameters=[
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("Sec-GPC", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("workspace", OpenApiTypes.STR, description="Workspace slug (staff callers)."),
        ],
        request=EventBatchInSerializer,
        responses={201: EventsOutSerializer, **PROBLEMS},
        examples=[OpenApiExample("Batch", value=EVENT_EXAMPLE, request_only=True)],
        tags=["consent"],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, dict) and "events" not in data:
            data = {"events": [data]}  # a single event
        serializer = EventBatchInSerializer(data=data)
        if not serializer.is_valid():
            _raise_item_errors(serializer.errors, count=len(data["events"]) if isinstance(data, dict) and
                               isinstance(data.get("events"), list) else 0)
            serializer.is_valid(raise_exception=True)  # not about single items: DRF's own 400
        ctx = _context(request, perm="consent.add_consentevent")
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            raise DomainError("Idempotency-Key is longer than 200 characters.", code="idempotency_key_invalid")
        scope = (request.auth.key_id if isinstance(request.auth, SiteCredential) else f"user-{request.user.pk}")
        body_hash = hashlib.sha256(request.body).hexdigest()
        if key:
            replay = self._replay(scope, key, body_hash)
            if replay is not None:
                return replay
        items = [
            EventInput(
                purpose=v["purpose"], state=v["state"], identity_kind=v.get("identity", {}).get("kind", ""),
                identity_value=v.get("identity", {}).get("value", ""),
                identity_namespace=v.get("identity", {}).get("namespace", ""),
                browser_id=v.get("browser_id", ""), purpose_version=v.get("purpose_version"),
                method=v.get("method", Method.API), occurred_at=v.get("occurred_at"),
                page_url=v.get("page_url", ""), notice_url=v.get("notice_url", ""),
                language=v.get("language", ""), jurisdiction=v.get("jurisdiction", ""),
                tcf_string=v.get("tcf_string", ""), gpp_string=v.get("gpp_string", ""), note=v.get("note", ""),
            )
            for v in serializer.validated_data["events"]
        ]
        try:
            with transaction.atomic():
                result = consent_events_record(items=items, ctx=ctx)
                codes = {c.id: c.code for c in catalogue.get().by_code.values()}
                receipt_url = reverse("consent-receipt", kwargs={"record_id": _RECORD_ID})
                body = {
                    "recorded": len(result.events),
                    "events": [_recorded(e, codes, receipt_url) for e in result.events],
                    "gpc_events": [_recorded(e, codes, receipt_url) for e in result.gpc_events],
                }
                if key:
                    IdempotencyRecord.objects.create(
                        scope=scope, key=key, request_hash=body_hash, status_code=201, body=body
                    )
        except IntegrityError:
            if key:
                replay = self._replay(scope, key, body_hash)
                if replay is not None:
                    return replay
            raise
        return Response(body, status=201)

    def _replay(self, scope: str, key: str, body_hash: str) -> Response | None:
        record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if record is None:
            return None
        if record.request_hash != body_hash:
            raise Conflict(ERR_IDEMPOTENCY_REUSED, code="idempotency_key_reused")
        response = Response(record.body, status=record.status_code)
        response["Idempotent-Replayed"] = "true"
        return response


# --- state and check -------------------------------------------------------------------------


class StatePurposeSerializer(serializers.Serializer):
    purpose = serializers.CharField()
    state = serializers.CharField(allow_null=True)
    purpose_version = serializers.IntegerField(allow_null=True)
    method = serializers.CharField(allow_null=True)
    occurred_at = serializers.DateTimeField(allow_null=True)
    needs_renewal = serializers.BooleanField()
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    receipt_id = serializers.UUIDField(allow_null=True)


class StateOutSerializer(serializers.Serializer):
    profile_found = serializers.BooleanField()
    jurisdiction = serializers.CharField()
    purposes = StatePurposeSerializer(many=True)


IDENTITY_PARAMS = [
    OpenApiParameter("identity_kind", OpenApiTypes.STR, enum=list(IdentityKind.values)),
    OpenApiParameter("identity_value", OpenApiTypes.STR),
    OpenApiParameter("identity_namespace", OpenApiTypes.STR),
    OpenApiParameter("browser_id", OpenApiTypes.STR, description="Instead of identity_kind/value."),
    OpenApiParameter("workspace", OpenApiTypes.STR, description="Workspace slug (staff callers)."),
]


class ConsentStateView(APIView):
    """Current decisions of one person (by identity or browser id) for every published purpose."""

    authentication_classes = AUTH_CLASSES

    @extend_schema(
        operation_id="consent_state_get", summary="Consent state of a person",
        parameters=IDENTITY_PARAMS,
        responses={200: StateOutSerializer, **PROBLEMS},
        examples=[OpenApiExample("State", response_only=True, value={
            "profile_found": True, "jurisdiction": "JP",
            "purposes": [{"purpose": "marketing_email", "state": "given", "purpose_version": 1,
                          "method": "banner", "occurred_at": "2026-11-01T09:00:00+00:00",
                          "needs_renewal": False, "allowed": True, "reason": "consent_given",
                          "receipt_id": "8d0f3c1e-4a51-4a4e-9b0e-0c1f1a2b3c4d"}]})],
        tags=["consent"],
    )
    def get(self, request: Request) -> Response:
        return self._state(request, request.query_params)

    @extend_schema(
        operation_id="consent_state_search", summary="Consent state of a person (identity in the body)",
        description=(
            "Same answer as `GET /api/v1/consent/state`, with the identity in a JSON body instead of the "
            "query string, so that it never reaches a web server's or proxy's access log. Prefer this form."
        ),
        request=IdentityQuery,
        responses={200: StateOutSerializer, **PROBLEMS},
        examples=[OpenApiExample("By e-mail", request_only=True, value={
            "identity_kind": "email", "identity_value": "hanako@example.jp"})],
        tags=["consent"],
    )
    def post(self, request: Request) -> Response:
        return self._state(request, _body_params(request))

    def _state(self, request: Request, params) -> Response:
        query = IdentityQuery(data=params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        ctx = _context(request, perm="consent.view_consentstate", params=params)
        _scope_identity(ctx, q["identity_kind"])
        from governance.subjects.selectors import profile_get_by_identity

        profile = profile_get_by_identity(
            workspace=ctx.workspace, kind=q["identity_kind"], value=q["identity_value"],
            namespace=q["identity_namespace"], jurisdiction=ctx.workspace.default_jurisdiction,
        )
        if ctx.gpc:
            profile = self._apply_gpc(ctx, q, profile)
        if profile is None:
            from consent.selectors import consent_decide

            purposes = [
                {"purpose": c.code, "state": None, "purpose_version": None, "method": None,
                 "occurred_at": None, "needs_renewal": False, "receipt_id": None,
                 **{k: v for k, v in consent_decide(
                     purpose=c, jurisdiction=ctx.workspace.default_jurisdiction, state=None,
                     state_version=None, occurred_at=None, restricted=False, found=False,
                 ).as_dict().items() if k in ("allowed", "reason")}}
                for c in sorted(catalogue.get().by_code.values(), key=lambda c: c.code)
            ]
            return Response({"profile_found": False, "jurisdiction": ctx.workspace.default_jurisdiction,
                             "purposes": purposes})
        return Response({"profile_found": True, "jurisdiction": profile.jurisdiction,
                         "purposes": profile_consent_overview(profile=profile)})

    def _apply_gpc(self, ctx, q, profile):
        from governance.subjects.services import IdentityInput, profile_upsert

        if profile is None:
            profile = profile_upsert(
                workspace=ctx.workspace,
                identities=[IdentityInput(q["identity_kind"], q["identity_value"], q["identity_namespace"])],
                actor=None, source="consent-gpc",
            ).profile
        index = identity_index(kind=q["identity_kind"], value=q["identity_value"],
                               namespace=q["identity_namespace"], jurisdiction=profile.jurisdiction)
        consent_gpc_apply(profile=profile, identity_kind=q["identity_kind"], identity_index_value=index, ctx=ctx)
        return profile


class CheckOutSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    purpose = serializers.CharField()
    purpose_version = serializers.IntegerField()
    basis = serializers.CharField(help_text="consent, contract, legal_obligation, …, or ccpa_<category>.")
    reason = serializers.CharField(help_text=(
        "consent_given, consent_refused, consent_withdrawn, no_consent (opt-in default), opt_out_default, "
        "renewal_required, expired, restricted, objected, legal_basis."))
    state = serializers.CharField(allow_null=True)
    profile_found = serializers.BooleanField()
    decided_at = serializers.DateTimeField(allow_null=True)


class CheckInSerializer(serializers.Serializer):
    """The check's fields as a JSON body (``POST /api/v1/consent/check``); all strings."""

    purpose = serializers.CharField()
    identity_kind = serializers.ChoiceField(choices=IdentityKind.choices, required=False)
    identity_value = serializers.CharField(required=False)
    identity_namespace = serializers.CharField(required=False, allow_blank=True)
    browser_id = serializers.CharField(required=False, allow_blank=True, help_text="Instead of identity_kind/value.")
    workspace = serializers.CharField(required=False, allow_blank=True, help_text="Workspace slug (staff callers).")


def _body_params(request) -> dict:
    """The ``POST`` forms' JSON body as query-like parameters: an object of strings, at most as many
    fields as a check has (the same limit as the query string)."""
    data = request.data
    if not isinstance(data, dict):
        raise DomainError("The body must be a JSON object.", code="invalid_body")
    if len(data) > _MAX_CHECK_FIELDS:
        raise DomainError("Too many fields.", code="invalid_body")
    bad = sorted(str(k) for k, v in data.items() if not isinstance(v, str))
    if bad:
        raise DomainError("Fields must be strings: " + ", ".join(bad) + ".", code="invalid_body")
    return data


class ConsentCheckView(APIView):
    """May this person's data be used for this purpose? (the hot path)."""

    authentication_classes = AUTH_CLASSES

    @extend_schema(
        operation_id="consent_check", summary="Check consent for one purpose",
        parameters=[*IDENTITY_PARAMS, OpenApiParameter("purpose", OpenApiTypes.STR, required=True)],
        responses={200: CheckOutSerializer, **PROBLEMS},
        examples=[OpenApiExample("Allowed", response_only=True, value={
            "allowed": True, "purpose": "marketing_email", "purpose_version": 1, "basis": "consent",
            "reason": "consent_given", "state": "given", "profile_found": True,
            "decided_at": "2026-11-01T09:00:00+00:00"})],
        tags=["consent"],
    )
    def get(self, request: Request) -> Response:
        return self._check(request, request.query_params)

    @extend_schema(
        operation_id="consent_check_search", summary="Check consent for one purpose (identity in the body)",
        description=(
            "Same rules and answer as `GET /api/v1/consent/check`, with the fields in a JSON body instead "
            "of the query string, so that an e-mail or phone never reaches a web server's or proxy's "
            "access log. Prefer this form for any identity other than a browser id."
        ),
        request=CheckInSerializer,
        responses={200: CheckOutSerializer, **PROBLEMS},
        examples=[OpenApiExample("By e-mail", request_only=True, value={
            "purpose": "marketing_email", "identity_kind": "email", "identity_value": "hanako@example.jp"})],
        tags=["consent"],
    )
    def post(self, request: Request) -> Response:
        return self._check(request, _body_params(request))

    def _check(self, request: Request, params) -> Response:
        purpose = params.get("purpose", "")
        if not purpose:
            raise DomainError("Give ?purpose=<code>.", code="purpose_required")
        q = _identity_params(params)
        auth = request.auth
        if isinstance(auth, SiteCredential):
            workspace = auth.site.workspace
            if auth.kind == KeyKind.PUBLISHABLE and q["identity_kind"] != IdentityKind.BROWSER_ID:
                raise KeyScopeError("A publishable key may only check consent for a browser id.")
        else:
            workspace = _context(request, perm="consent.check_consent", params=params).workspace
        result = consent_check(
            workspace_id=workspace.pk, default_jurisdiction=workspace.default_jurisdiction,
            purpose_code=purpose, kind=q["identity_kind"], value=q["identity_value"],
            namespace=q["identity_namespace"],
        )
        return Response(result.as_dict())


def consent_check_fast(request):
    """The check hot path for site keys without DRF's per-request machinery.

    Same rules, errors and JSON as :class:`ConsentCheckView` (which it falls back to for staff
    callers, bad keys and anything unusual); the URL maps here and the schema is generated from
    the class (``cls`` below). Most checks do not even get here:
    :class:`consent.middleware.ConsentCheckMiddleware` answers them with the same function ahead
    of the session, CSRF, auth and message middleware, none of which applies to a site key.
    """
    response = consent_check_answer(request)
    return _check_view(request) if response is None else response


def consent_check_answer(request) -> HttpResponse | None:
    """The check's response for a ``GET`` (or a ``POST`` with a JSON body) with a site key, or
    ``None`` for anything the DRF view must handle (staff credentials, bad keys, browser calls with
    an ``Origin``, too many fields, a body that is not a JSON object of strings).

    The database is read without Django's per-request ping
    (:func:`governance.dbread.read_without_ping`): one round trip per check.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Bearer mc"):
        return None
    method = request.method
    if method == "GET":
        try:
            params = dict(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True,
                                    max_num_fields=_MAX_CHECK_FIELDS))
        except ValueError:
            return None  # too many fields: the view answers with its 400
    elif method == "POST":
        params = _json_params(request)
        if params is None:
            return None  # the view parses the body and answers (415, 400, …)
    else:
        return None
    try:
        result = read_without_ping(lambda: _check_for_site(request, header[7:], params))
    except DomainError as exc:
        return problem_response(status_code=exc.status_code, code=exc.code, title=exc.title,
                                detail=exc.detail, extra=exc.extra)
    if result is None:
        return None
    return HttpResponse(json.dumps(result.as_dict(), ensure_ascii=False, separators=(",", ":")),
                        content_type="application/json")


# More query fields than a check has is not a check (DRF's view answers it).
_MAX_CHECK_FIELDS = 16


def _json_params(request) -> dict | None:
    """A ``POST`` check's JSON body as parameters, or ``None`` when the DRF view must judge it."""
    if request.content_type != "application/json" or request.META.get("QUERY_STRING"):
        return None
    try:
        data = json_loads(request.body)
    except ValueError:  # not JSON, too deep, not UTF-8
        return None
    if (not isinstance(data, dict) or len(data) > _MAX_CHECK_FIELDS
            or not all(isinstance(v, str) for v in data.values())):
        return None
    return data


def _check_for_site(request, secret: str, params: dict) -> CheckResult | None:
    """The check for a site key; ``None`` when the key is unknown, revoked or expired, is a
    publishable key, or the call comes from an origin (the DRF view then gives the authentication
    error, requires an allowed Origin or applies CORS rules).

    The key is verified once per process and kept while the keys revision that the check's own
    statement returns stays the same; when it moved, the key is verified again and the check
    runs again (a revoked key is refused on its next check).
    """
    credential = credential_for(secret, max_age=None)
    if not _check_credential_usable(request, credential):
        return None
    rate_limit_hit(key_id=credential.key_id, limit_per_minute=credential.site.rate_limit_per_minute)
    purpose = params.get("purpose", "")
    if not purpose:
        raise DomainError("Give ?purpose=<code>.", code="purpose_required")
    q = _identity_params(params)
    if credential.kind == KeyKind.PUBLISHABLE and q["identity_kind"] != IdentityKind.BROWSER_ID:
        raise KeyScopeError("A publishable key may only check consent for a browser id.")
    for _attempt in (0, 1):
        workspace = credential.site.workspace
        result = consent_check(
            workspace_id=workspace.pk, default_jurisdiction=workspace.default_jurisdiction,
            purpose_code=purpose, kind=q["identity_kind"], value=q["identity_value"],
            namespace=q["identity_namespace"],
        )
        if result.keys_revision == credential.revision:
            break
        credential_forget(secret)  # a key, site or workspace changed since it was verified
        credential = credential_for(secret, max_age=None)
        if not _check_credential_usable(request, credential):
            return None
    return result


def _check_credential_usable(request, credential: SiteCredential | None) -> bool:
    # Publishable site keys always go through the DRF view, which requires an allowed Origin (and
    # refuses a call without one); so do page tokens called with an Origin (CORS rules).
    if credential is None or credential.needs_origin:
        return False
    return not (credential.kind == KeyKind.PUBLISHABLE and request.headers.get("Origin"))


_check_view = ConsentCheckView.as_view()
consent_check_fast.cls = ConsentCheckView  # drf-spectacular documents the class
consent_check_fast.initkwargs = {}
consent_check_fast.csrf_exempt = True


# --- receipts and purposes -------------------------------------------------------------------


class ConsentReceiptView(APIView):
    """A consent receipt (Kantara CR v1.1 with ISO/IEC TS 27560 record fields)."""

    authentication_classes = AUTH_CLASSES

    @extend_schema(
        operation_id="consent_receipt_get", summary="Consent receipt",
        description="JSON receipt. The response's `html_url` is the person's human-readable copy.",
        parameters=[OpenApiParameter("record_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Kantara v1.1 receipt"),
                   **PROBLEMS},
        tags=["consent"],
    )
    def get(self, request: Request, record_id: str) -> Response:
        try:
            record_id = uuid.UUID(record_id)
        except ValueError:
            raise NotFound("No consent record with this id.", code="receipt_not_found") from None
        auth = request.auth
        if isinstance(auth, SiteCredential):
            if auth.kind != KeyKind.SECRET:
                raise KeyScopeError("Receipts are read with a secret key (the person gets the HTML link).")
            event = consent_event_get(event_id=record_id, workspace_id=auth.site.workspace_id)
        else:
            if not request.user.has_perm("consent.view_consentevent"):
                raise Forbidden("You need the permission consent.view_consentevent.")
            event = consent_event_get(event_id=record_id)
        body = receipt_json(event=event)
        body["html_url"] = request.build_absolute_uri(
            reverse("consent-receipt-page", kwargs={"record_id": event.id}) + f"?t={receipt_token(event)}"
        )
        return Response(body)


class PurposeOutSerializer(serializers.Serializer):
    code = serializers.CharField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    translations = serializers.DictField()
    legal_basis = serializers.DictField()
    transfer_country = serializers.CharField(allow_null=True)
    data_categories = serializers.ListField(child=serializers.CharField())
    recipients = serializers.ListField(child=serializers.CharField())
    retention_days = serializers.IntegerField(allow_null=True)
    defaults = serializers.DictField()
    notice_url = serializers.CharField(allow_null=True)
    published_at = serializers.DateTimeField(allow_null=True)


class PurposeListView(APIView):
    """The published purpose catalogue (public), with translations; ETag / If-None-Match."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="purposes_list", summary="Published purposes",
        parameters=[OpenApiParameter("lang", OpenApiTypes.STR, enum=["en", "ja"])],
        responses={200: PurposeOutSerializer(many=True), 304: OpenApiResponse(description="Not modified"),
                   **PROBLEMS},
        tags=["purposes"],
    )
    def get(self, request: Request) -> Response:
        lang = request.query_params.get("lang")
        if lang is not None and lang not in ("en", "ja"):
            raise DomainError("lang must be 'en' or 'ja'.", code="invalid_lang")
        lang = lang or ("ja" if str(getattr(request, "LANGUAGE_CODE", "en")).startswith("ja") else "en")
        etag = catalogue.get().etag[:-1] + f'-{lang}"'
        # RFC 9110 §13.1.2: "*" matches any current representation; weak comparison for GET.
        sent = [t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")]
        if "*" in sent or etag in sent:
            response = HttpResponse(status=304)
            del response["Content-Type"]  # a 304 has no body
        else:
            response = Response(purposes_published(locale=lang))
        # The headers a 200 would carry go on the 304 too (RFC 9110 §15.4.5).
        response["ETag"] = etag
        response["Cache-Control"] = "public, max-age=60"
        response["Vary"] = "Accept-Language"
        # Public catalogue, no credentials: any website's snippet may read it.
        response["Access-Control-Allow-Origin"] = "*"
        response["Access-Control-Expose-Headers"] = "ETag"
        return response
