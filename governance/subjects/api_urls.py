from rest_framework.routers import SimpleRouter

from governance.subjects.api import ProfileViewSet

router = SimpleRouter(trailing_slash="/?")
router.register("profiles", ProfileViewSet, basename="profile")
urlpatterns = router.urls
