from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

from approvals.metrics import metrics_view
from approvals.web.views_auth import admin_signin

# The admin can change who approves what: it needs an OTP-verified session like everything else.
admin.site.__class__ = OTPAdminSite

urlpatterns = [
    # Before the admin's own URLs: its login page is replaced by the portal's sign-in.
    path("admin/login/", admin_signin, name="admin_signin"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("", include("approvals.api.urls")),
    path("", include("approvals.web.urls")),
]
