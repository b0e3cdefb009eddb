from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from approvals.api import views, views_extensions
from approvals.api.errors import api_not_found

router = SimpleRouter()
router.register("profiles", views.ProfileViewSet, basename="api-profile")
router.register("requests", views.RequestViewSet, basename="api-request")
router.register("alarms", views.AlarmViewSet, basename="api-alarm")

extensions = views_extensions.ExtensionViewSet
extension_routes = [
    path("", extensions.as_view({"get": "list", "post": "create"}), name="api-extension-list"),
    path("<str:pk>/approve/", extensions.as_view({"post": "approve"}), name="api-ext-approve"),
    path("<str:pk>/reject/", extensions.as_view({"post": "reject"}), name="api-ext-reject"),
]

urlpatterns = [
    path("api/v1/me/", views.MeView.as_view(), name="api-me"),
    path("api/v1/requests/<str:request_pk>/extensions/", include(extension_routes)),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", views.HealthView.as_view(), name="healthz"),
    re_path(r"^api/(?P<unmatched>.*)$", api_not_found),
]
