"""Audit API: report exports (streamed or in the background) and access-anomaly alerts."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditExport
from governance.api.serializers import StrictSerializer
from oversight.exporters import exporter_get, exporters_all
from oversight.exporters.services import (
    audit_export_create,
    audit_export_download,
    audit_export_enqueue,
    audit_export_get,
    audit_export_stream,
    download_name,
)
from oversight.reports import ExportForbidden, reports_all

FORMATS = ["csv", "jsonl", "xlsx", "pdf"]


def export_output(export: AuditExport, request) -> dict:
    return {
        "id": str(export.pk),
        "report": export.report,
        "format": export.format,
        "status": export.status,
        "rows_total": export.rows_total,
        "rows_done": export.rows_done,
        "percent": export.percent,
        "created_at": export.created_at,
        "finished_at": export.finished_at,
        "expires_at": export.expires_at,
        "error": export.error,
        "download_url": request.build_absolute_uri(f"/api/v1/audit/exports/{export.pk}/download")
        if export.status == "done" and not export.streamed and export.file_name
        else None,
    }


class ExportOutput(serializers.Serializer):
    id = serializers.UUIDField()
    report = serializers.CharField()
    format = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "running", "done", "failed"])
    rows_total = serializers.IntegerField(allow_null=True)
    rows_done = serializers.IntegerField()
    percent = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    download_url = serializers.URLField(allow_null=True)


class ReportListApi(APIView):
    @extend_schema(
        operation_id="audit_reports_list",
        summary="List the audit reports, their filters and formats",
        responses={200: inline_serializer("AuditReport", {
            "identifier": serializers.CharField(), "name": serializers.CharField(),
            "description": serializers.CharField(), "available": serializers.BooleanField(),
            "formats": serializers.ListField(child=serializers.CharField()),
            "filters": serializers.ListField(child=serializers.CharField()),
        }, many=True)},
        tags=["audit"],
    )
    def get(self, request):
        formats = list(exporters_all())
        return Response([
            {
                "identifier": r.identifier, "name": str(r.verbose_name),
                "description": str(r.description), "available": r.is_available(),
                "formats": formats, "filters": [n for n in r.Filters().fields if n != "until_seq"],
            }
            for r in reports_all()
        ])


class ReportStreamApi(APIView):
    @extend_schema(
        operation_id="audit_report_stream",
        summary="Stream a report now (filters as query parameters)",
        description=(
            "Streams the report in the requested format. CSV and JSON Lines stream row by row, so "
            "any size works; for very large XLSX/PDF exports prefer `POST /api/v1/audit/exports/`. "
            "The export is itself audited. Support agents only get profiles of their workspaces."
        ),
        parameters=[
            OpenApiParameter("report", str, OpenApiParameter.PATH, enum=["access_log", "request_register",
                             "consent_proof", "records_of_processing", "third_party_provision"]),
            OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=FORMATS),
            OpenApiParameter("profile", OpenApiTypes.UUID, description="Subject profile id"),
            OpenApiParameter("actor", str, description="Actor user id, username or e-mail"),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
            OpenApiParameter("action", str, enum=["access", "create", "update", "delete"]),
            OpenApiParameter("outcome", str, enum=["allowed", "denied"]),
            OpenApiParameter("workspace", str, description="Workspace slug"),
        ],
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
        examples=[OpenApiExample(
            "CSV of one person's access log",
            value="Seq,Time (UTC),Actor id,Actor,Action,Outcome,Profile,...",
            response_only=True, media_type="text/csv",
        )],
        tags=["audit"],
    )
    def get(self, request, report: str, fmt: str):
        filters = {k: v for k, v in request.query_params.items()}
        export = audit_export_create(
            user=request.user, report=report, fmt=fmt, filters=filters, streamed=True, request=request
        )
        exporter = exporter_get(fmt)
        response = StreamingHttpResponse(
            audit_export_stream(export=export, user=request.user), content_type=exporter.media_type
        )
        response["Content-Disposition"] = f'attachment; filename="{download_name(export)}"'
        response["X-Mamoru-Export-Id"] = str(export.pk)
        response["Cache-Control"] = "no-store"
        return response


class AuditExportCreateInput(StrictSerializer):
    report = serializers.CharField(max_length=64)
    format = serializers.ChoiceField(choices=FORMATS)
    filters = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)


class ExportCreateApi(APIView):
    InputSerializer = AuditExportCreateInput

    @extend_schema(
        operation_id="audit_export_create",
        summary="Start a background export",
        request=InputSerializer,
        responses={202: ExportOutput},
        examples=[OpenApiExample(
            "Access log of March as XLSX",
            value={"report": "access_log", "format": "xlsx",
                   "filters": {"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"}},
            request_only=True,
        )],
        tags=["audit"],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        export = audit_export_enqueue(
            user=request.user, report=data.validated_data["report"], fmt=data.validated_data["format"],
            filters=data.validated_data.get("filters", {}), request=request,
        )
        return Response(ExportOutput(export_output(export, request)).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    @extend_schema(operation_id="audit_export_retrieve", summary="Progress of a background export",
                   responses={200: ExportOutput}, tags=["audit"])
    def get(self, request, export_id):
        export = audit_export_get(export_id=export_id, user=request.user)
        return Response(ExportOutput(export_output(export, request)).data)


class ExportDownloadApi(APIView):
    @extend_schema(operation_id="audit_export_download", summary="Download a finished export",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, tags=["audit"])
    def get(self, request, export_id):
        export = audit_export_get(export_id=export_id, user=request.user)
        chunks = audit_export_download(export=export, user=request.user, request=request)
        response = StreamingHttpResponse(chunks, content_type=exporter_get(export.format).media_type)
        response["Content-Disposition"] = f'attachment; filename="{download_name(export)}"'
        response["Cache-Control"] = "no-store"
        return response


class AlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    rule = serializers.CharField(source="rule.name")
    actor = serializers.CharField(source="actor_label")
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    count = serializers.IntegerField()
    threshold = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)


def _require_alert_access(user, perm: str) -> None:
    if not user.has_perm(perm):
        raise ExportForbidden("You may not see access anomalies.", code="forbidden")


class AlertListApi(APIView):
    @extend_schema(
        operation_id="audit_alerts_list", summary="Access-anomaly alerts (open first)",
        parameters=[OpenApiParameter("open", bool, description="Only unacknowledged alerts")],
        responses={200: AlertOutput(many=True)}, tags=["audit"],
    )
    def get(self, request):
        from oversight.anomalies import alerts_list

        _require_alert_access(request.user, "audit.view_anomalyalert")
        only_open = request.query_params.get("open") in {"1", "true", "yes"}
        alerts = alerts_list(only_open=only_open)[:500]
        return Response(AlertOutput(alerts, many=True).data)


class AlertAcknowledgeInput(serializers.Serializer):
    note = serializers.CharField(max_length=500, help_text="Why the alert is all right, or what was done (required).")


class AlertAcknowledgeApi(APIView):
    InputSerializer = AlertAcknowledgeInput

    @extend_schema(
        operation_id="audit_alert_acknowledge", summary="Acknowledge an alert (audited)",
        request=InputSerializer, responses={200: AlertOutput},
        examples=[OpenApiExample("Known batch job", value={"note": "Monthly reconciliation run"},
                                 request_only=True)],
        tags=["audit"],
    )
    def post(self, request, alert_id: int):
        from oversight.anomalies import alert_acknowledge, alert_get

        _require_alert_access(request.user, "audit.change_anomalyalert")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        alert = alert_acknowledge(
            alert=alert_get(alert_id=alert_id), actor=request.user,
            note=data.validated_data["note"], request=request,
        )
        return Response(AlertOutput(alert).data)
