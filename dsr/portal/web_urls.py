from django.urls import include, path

from dsr.portal import rendering, views

portal_patterns = [
    path("", views.home, name="home"),
    path("request/", views.request_new, name="request"),
    path("r/<str:token>/verify/", views.request_verify, name="verify"),
    path("r/<str:token>/reply/", views.request_reply, name="reply"),
    path("r/<str:token>/", views.request_status, name="status"),
    path("notice/", views.privacy_notice, name="notice"),
    path("assets/<str:name>", rendering.asset, name="asset"),
    # A brand's own pages: its requests cover that brand (workspace slug).
    path("<slug:brand>/", views.home, name="brand_home"),
    path("<slug:brand>/request/", views.request_new, name="brand_request"),
]

urlpatterns = [path("privacy/", include((portal_patterns, "portal")))]
