from django.urls import path

from approvals.web import (
    views_auth,
    views_dashboard,
    views_drills,
    views_extensions,
    views_requests,
)

urlpatterns = [
    path("", views_dashboard.dashboard, name="dashboard"),
    path("login/", views_auth.signin, name="login"),
    path("login/code/", views_auth.signin_otp, name="login_otp"),
    path("login/enrol/", views_auth.enrol, name="enrol"),
    path("logout/", views_auth.signout, name="logout"),
    path("account/", views_auth.account, name="account"),
    path("drills/", views_drills.drills, name="drills"),
    path("requests/new/", views_requests.request_new, name="request_new"),
    path(
        "requests/<uuid:access_request_id>/", views_requests.request_detail, name="request_detail"
    ),
    path(
        "requests/<uuid:access_request_id>/live/",
        views_requests.request_live,
        name="request_live",
    ),
    path(
        "requests/<uuid:access_request_id>/approve/",
        views_requests.request_approve,
        name="request_approve",
    ),
    path(
        "requests/<uuid:access_request_id>/reject/",
        views_requests.request_reject,
        name="request_reject",
    ),
    path(
        "requests/<uuid:access_request_id>/cancel/",
        views_requests.request_cancel,
        name="request_cancel",
    ),
    path(
        "requests/<uuid:access_request_id>/revoke/",
        views_requests.request_revoke,
        name="request_revoke",
    ),
    path(
        "requests/<uuid:access_request_id>/extensions/",
        views_extensions.extension_ask,
        name="extension_ask",
    ),
    path(
        "requests/<uuid:access_request_id>/extensions/<uuid:extension_id>/<str:verdict>/",
        views_extensions.extension_sign,
        name="extension_sign",
    ),
    path(
        "requests/<uuid:access_request_id>/credentials/",
        views_requests.request_credentials,
        name="request_credentials",
    ),
    path(
        "requests/<uuid:access_request_id>/report.<str:fmt>",
        views_requests.request_report,
        name="request_report",
    ),
    path(
        "requests/<uuid:access_request_id>/export.<str:fmt>",
        views_requests.request_export,
        name="request_export",
    ),
]
