from django.urls import path

from consent import api

# Called on every page view of a website: tried before the other routes (governance/urls.py).
hot_urlpatterns = [
    path("consent/check", api.consent_check_fast, name="consent-check"),
]

urlpatterns = [
    path("consent/events", api.ConsentEventsView.as_view(), name="consent-events"),
    path("consent/state", api.ConsentStateView.as_view(), name="consent-state"),
    path("consent/receipts/<str:record_id>", api.ConsentReceiptView.as_view(), name="consent-receipt"),
    path("purposes/", api.PurposeListView.as_view(), name="purposes"),
]
