from django.urls import path

from oversight import api

urlpatterns = [
    path("audit/reports/", api.ReportListApi.as_view(), name="audit-reports"),
    path("audit/reports/<slug:report>/<slug:fmt>", api.ReportStreamApi.as_view(), name="audit-report-stream"),
    path("audit/exports/", api.ExportCreateApi.as_view(), name="audit-export-create"),
    path("audit/exports/<uuid:export_id>", api.ExportDetailApi.as_view(), name="audit-export-detail"),
    path("audit/exports/<uuid:export_id>/download", api.ExportDownloadApi.as_view(),
         name="audit-export-download"),
    path("audit/alerts/", api.AlertListApi.as_view(), name="audit-alerts"),
    path("audit/alerts/<int:alert_id>/acknowledge", api.AlertAcknowledgeApi.as_view(),
         name="audit-alert-acknowledge"),
]
