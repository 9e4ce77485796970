from django.urls import path

from consent import views

urlpatterns = [
    path(".well-known/gpc.json", views.gpc_well_known, name="gpc-json"),
    path("consent/receipts/<uuid:record_id>/", views.receipt_page, name="consent-receipt-page"),
    path("consent/preferences/<slug:site_slug>/", views.preference_centre, name="consent-preferences"),
    path("consent/mamoru-consent.js", views.consent_script, name="consent-script"),
]
