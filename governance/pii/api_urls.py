from django.urls import path

from governance.pii.api import IngestProfilesView, ScanView

urlpatterns = [
    path("scan/", ScanView.as_view(), name="pii-scan"),
    path("ingest/profiles", IngestProfilesView.as_view(), name="pii-ingest-profiles"),
]
