from django.urls import path

from dsr import api

urlpatterns = [
    path("dsr/requests", api.RequestListCreateApi.as_view(), name="dsr-requests"),
    path("dsr/requests/<uuid:pk>", api.RequestDetailApi.as_view(), name="dsr-request-detail"),
    path("dsr/requests/<uuid:pk>/status", api.RequestStatusApi.as_view(), name="dsr-request-status"),
    path("dsr/requests/<uuid:pk>/verify", api.RequestVerifyApi.as_view(), name="dsr-request-verify"),
    path("dsr/requests/<uuid:pk>/approve", api.RequestApproveApi.as_view(), name="dsr-request-approve"),
    path("dsr/requests/<uuid:pk>/deny", api.RequestDenyApi.as_view(), name="dsr-request-deny"),
    path("dsr/requests/<uuid:pk>/extend", api.RequestExtendApi.as_view(), name="dsr-request-extend"),
    path("dsr/requests/<uuid:pk>/retry", api.RequestRetryApi.as_view(), name="dsr-request-retry"),
    # Polled by the admin's request page; the path predates the DSR app owning it (kept).
    path("audit/requests/<uuid:request_id>/progress", api.RequestProgressApi.as_view(),
         name="audit-request-progress"),
]
