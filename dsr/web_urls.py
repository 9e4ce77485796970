from django.urls import path

from dsr.views import package_download

urlpatterns = [
    path("dsr/packages/<str:token>/", package_download, name="dsr-package-download"),
]
