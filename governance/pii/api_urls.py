from django.urls import path

from governance.pii.api import IngestJobView, IngestProfilesView, ScanView

urlpatterns = [
    path("scan/", ScanView.as_view(), name="pii-scan"),
    path("ingest/profiles", IngestProfilesView.as_view(), name="pii-ingest-profiles"),
    path("ingest/jobs/<uuid:job_id>", IngestJobView.as_view(), name="pii-ingest-job"),
]
