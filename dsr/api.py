"""DSR API under ``/api/v1/dsr/``: submit, verify and status for subjects and integrations;
list, detail, approve, deny, extend and retry for staff."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from dsr.models import Channel, DataSubjectRequest, RequestType
from dsr.selectors import access_package_url, dsr_request_progress, dsr_request_timeline
from dsr.services import (
    dsr_request_approve,
    dsr_request_deny,
    dsr_request_extend,
    dsr_request_retry,
    dsr_request_submit,
    dsr_request_verify,
)
from dsr.throttles import DsrApiThrottle, code_mail_throttle
from governance.access.policy import workspaces_visible_to
from governance.api.errors import NotFound
from governance.api.serializers import StrictSerializer
from governance.links import public_base_url
from governance.subjects.identities import email_requester_canonical
from governance.subjects.models import Jurisdiction, Workspace


class StaffDsrPermission(BasePermission):
    """Staff with the model permission; reads need view, actions need change."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False
        perm = "dsr.view_datasubjectrequest" if request.method == "GET" else "dsr.change_datasubjectrequest"
        return user.has_perm(perm)


def _visible(user, pk) -> DataSubjectRequest:
    request = DataSubjectRequest.objects.filter(pk=pk, workspace__in=workspaces_visible_to(user)).first()
    if request is None:
        raise NotFound("No such request.")
    return request


class DsrStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    request_type = serializers.CharField()
    status = serializers.CharField()
    jurisdiction = serializers.CharField()
    received_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    progress = serializers.DictField()


def _status(request: DataSubjectRequest) -> dict:
    return {
        "id": request.id, "request_type": request.request_type, "status": request.status,
        "jurisdiction": request.jurisdiction, "received_at": request.received_at, "due_at": request.due_at,
        "progress": dsr_request_progress(request=request),
    }


SUBMIT_EXAMPLE = OpenApiExample(
    "Access request", request_only=True,
    value={"workspace": "shop-eu", "request_type": "access", "email": "erika@example.de", "locale": "en"},
)
STATUS_EXAMPLE = OpenApiExample(
    "Status", response_only=True,
    value={"id": "6f1c0a52-8a4e-4c1e-9a59-2b7b0e3f1d11", "request_type": "access",
           "status": "pending_verification", "jurisdiction": "EU", "received_at": "2026-11-22T10:00:00Z",
           "due_at": "2026-12-22T10:00:00Z",
           "progress": {"total": 0, "done": 0, "failed": 0, "running": 0, "percent": 0}},
)


class RequestListCreateApi(APIView):
    throttle_classes = [DsrApiThrottle]

    class DsrSubmitInSerializer(StrictSerializer):
        workspace = serializers.SlugField()
        request_type = serializers.ChoiceField(choices=RequestType.choices)
        email = serializers.CharField(max_length=254)
        locale = serializers.CharField(max_length=8, required=False, default="en")
        jurisdiction = serializers.ChoiceField(choices=Jurisdiction.choices, required=False, allow_null=True)
        details = serializers.DictField(required=False)

        def validate_email(self, value: str) -> str:
            # Before the per-address mail count: 400 invalid_identity / invalid_email (x@[127.0.0.1], x@localhost).
            email_requester_canonical(value)
            return value

    class DsrListItemSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        workspace = serializers.CharField(source="workspace.slug")
        request_type = serializers.CharField()
        status = serializers.CharField()
        channel = serializers.CharField()
        received_at = serializers.DateTimeField()
        due_at = serializers.DateTimeField()

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [StaffDsrPermission()]

    def get_throttles(self):
        return super().get_throttles() if self.request.method == "POST" else []

    @extend_schema(
        summary="Submit a data-subject request",
        description="Anyone may submit; a 6-digit code is e-mailed to the address. The answer is the "
        "same whether or not the address is known (no enumeration). Anonymous callers are limited per "
        "client address (MAMORU_DSR_API_PER_HOUR) and every caller per e-mail address "
        "(MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR): 429 `rate_limited` with `Retry-After`.",
        request=DsrSubmitInSerializer, responses={201: DsrStatusSerializer}, examples=[SUBMIT_EXAMPLE, STATUS_EXAMPLE],
        auth=[],
    )
    def post(self, request):
        data = self.DsrSubmitInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        workspace = Workspace.objects.filter(slug=values["workspace"]).first()
        if workspace is None:
            raise NotFound("No such workspace.", code="unknown_workspace")
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        code_mail_throttle(email=values["email"])
        dsr = dsr_request_submit(
            workspace=workspace, request_type=values["request_type"], email=values["email"],
            locale=values.get("locale") or "en", jurisdiction=values.get("jurisdiction"),
            channel=Channel.API if user else Channel.PORTAL, details=values.get("details"), actor=user,
            public_base_url=public_base_url(request),
        )
        return Response(_status(dsr), status=status.HTTP_201_CREATED)

    @extend_schema(summary="List requests (staff)", responses={200: DsrListItemSerializer(many=True)})
    def get(self, request):
        queryset = DataSubjectRequest.objects.filter(
            workspace__in=workspaces_visible_to(request.user)).select_related("workspace")
        for name in ("status", "request_type"):
            if request.query_params.get(name):
                queryset = queryset.filter(**{name: request.query_params[name]})
        return Response(self.DsrListItemSerializer(queryset[:500], many=True).data)


class RequestVerifyApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [DsrApiThrottle]

    class DsrVerifyInSerializer(StrictSerializer):
        code = serializers.RegexField(r"^\d{6}$", max_length=6)

    @extend_schema(
        summary="Verify a request with the e-mailed code",
        request=DsrVerifyInSerializer, responses={200: DsrStatusSerializer},
        examples=[OpenApiExample("Code", request_only=True, value={"code": "123456"}), STATUS_EXAMPLE],
        auth=[],
    )
    def post(self, request, pk):
        data = self.DsrVerifyInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dsr = get_object_or_404(DataSubjectRequest, pk=pk)
        dsr = dsr_request_verify(request=dsr, code=data.validated_data["code"])
        return Response(_status(dsr))


class RequestStatusApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [DsrApiThrottle]

    @extend_schema(summary="Status and progress of a request (no personal data)",
                   responses={200: DsrStatusSerializer}, examples=[STATUS_EXAMPLE], auth=[])
    def get(self, request, pk):
        return Response(_status(get_object_or_404(DataSubjectRequest, pk=pk)))


class RequestDetailApi(APIView):
    permission_classes = [StaffDsrPermission]

    class DsrDetailSerializer(DsrStatusSerializer):
        workspace = serializers.CharField()
        channel = serializers.CharField()
        attention_reason = serializers.CharField()
        rejection_reason = serializers.CharField()
        extension_reason = serializers.CharField()
        timeline = serializers.ListField(child=serializers.DictField())
        tasks = serializers.ListField(child=serializers.DictField())
        package_url = serializers.CharField(allow_null=True)

    @extend_schema(summary="A request with its timeline and nodes (staff)", responses={200: DsrDetailSerializer})
    def get(self, request, pk):
        dsr = _visible(request.user, pk)
        body = _status(dsr) | {
            "workspace": dsr.workspace.slug, "channel": dsr.channel, "attention_reason": dsr.attention_reason,
            "rejection_reason": dsr.rejection_reason, "extension_reason": dsr.extension_reason,
            "timeline": dsr_request_timeline(request=dsr),
            "tasks": [
                {"phase": t.phase, "node": t.node, "status": t.status, "attempts": t.attempts,
                 "rows_found": t.rows_found, "rows_changed": t.rows_changed, "error": t.error,
                 "duration_ms": t.duration_ms}
                for t in dsr.tasks.all()
            ],
            # Staff see that a package exists; the link itself goes only to the subject.
            "package_url": None if access_package_url(request=dsr) is None else "sent to the subject",
        }
        return Response(body)


class DsrReasonSerializer(StrictSerializer):
    reason = serializers.CharField(min_length=10, max_length=2000)


def _action(name: str, service, needs_reason: bool):
    class ActionApi(APIView):
        permission_classes = [StaffDsrPermission]

        @extend_schema(
            summary=f"{name.capitalize()} a request (staff)",
            request=DsrReasonSerializer if needs_reason else None, responses={200: DsrStatusSerializer},
            examples=[OpenApiExample("Reason", request_only=True,
                                     value={"reason": "The identity could not be confirmed by the documents given."})]
            if needs_reason else [],
        )
        def post(self, request, pk):
            dsr = _visible(request.user, pk)
            kwargs = {}
            if needs_reason:
                data = DsrReasonSerializer(data=request.data)
                data.is_valid(raise_exception=True)
                kwargs["reason"] = data.validated_data["reason"]
            dsr = service(request=dsr, actor=request.user, **kwargs)
            return Response(_status(dsr))

    ActionApi.__name__ = f"Request{name.capitalize()}Api"
    return ActionApi


RequestApproveApi = _action("approve", dsr_request_approve, False)
RequestDenyApi = _action("deny", dsr_request_deny, True)
RequestExtendApi = _action("extend", dsr_request_extend, True)
RequestRetryApi = _action("retry", dsr_request_retry, False)


class RequestProgressApi(APIView):
    @extend_schema(
        operation_id="audit_request_progress",
        summary="Progress of a data-subject request (polled by the admin's request page)",
        responses={200: inline_serializer("RequestProgress", {
            "status": serializers.CharField(), "percent": serializers.IntegerField(),
            "done": serializers.IntegerField(), "total": serializers.IntegerField(),
            "failed": serializers.IntegerField(), "running": serializers.IntegerField(),
            "text": serializers.CharField(),
        })},
        examples=[OpenApiExample("Half way", value={
            "status": "running", "percent": 50, "done": 3, "total": 6, "failed": 0, "running": 1,
            "text": "50% — 3 of 6 nodes done, 0 failed"}, response_only=True)],
        tags=["audit"],
    )
    def get(self, request, request_id):
        if not request.user.has_perm("dsr.view_datasubjectrequest"):
            raise NotFound("No such request.")
        req = DataSubjectRequest.objects.filter(
            pk=request_id, workspace__in=workspaces_visible_to(request.user)
        ).first()
        if req is None:
            raise NotFound("No such request.")
        p = dsr_request_progress(request=req)
        text = gettext("%(p)s%% — %(d)s of %(t)s nodes done, %(f)s failed") % {
            "p": p["percent"], "d": p["done"], "t": p["total"], "f": p["failed"]}
        return Response({"status": req.status, **p, "text": text})
