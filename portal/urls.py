from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

from approvals.metrics import metrics_view

# The admin can change who approves what: it needs an OTP-verified session like everything else.
admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("", include("approvals.api.urls")),
    path("", include("approvals.web.urls")),
]
