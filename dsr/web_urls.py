from django.urls import path

from dsr.catalogue import views as catalogue_views
from dsr.views import package_download

urlpatterns = [
    path("dsr/packages/<str:token>/", package_download, name="dsr-package-download"),
    # The connector catalogue's admin pages (staff login and second factor: staff_view).
    path("admin-catalogue/", catalogue_views.staff_view(catalogue_views.catalogue_index), name="dsr-catalogue"),
    path("admin-catalogue/<slug:slug>/add/", catalogue_views.staff_view(catalogue_views.catalogue_add),
         name="dsr-catalogue-add"),
    path("admin-catalogue/stores/<slug:key>/", catalogue_views.staff_view(catalogue_views.catalogue_store),
         name="dsr-catalogue-store"),
]
