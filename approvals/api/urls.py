from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from approvals.api import views
from approvals.api.errors import api_not_found

router = SimpleRouter()
router.register("profiles", views.ProfileViewSet, basename="api-profile")
router.register("requests", views.RequestViewSet, basename="api-request")
router.register("alarms", views.AlarmViewSet, basename="api-alarm")

urlpatterns = [
    path("api/v1/me/", views.MeView.as_view(), name="api-me"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", views.HealthView.as_view(), name="healthz"),
    re_path(r"^api/(?P<unmatched>.*)$", api_not_found),
]
