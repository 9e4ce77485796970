from django.urls import path

from governance.access import views

app_name = "access"

urlpatterns = [
    path("account/mfa/setup/", views.mfa_setup, name="mfa-setup"),
    path("account/mfa/verify/", views.mfa_verify, name="mfa-verify"),
]
