"""Who may reach a page, and the headers every portal page carries."""

import functools
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from approvals import selectors

LAST_ACTIVITY_KEY = "portal_last_activity"
PENDING_USER_KEY = "portal_signin_pending"
PENDING_SIGNIN_SECONDS = 300
# Scripts and styles come from our own static files only; nothing may frame the portal.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def safe_next(request: HttpRequest, target: str) -> str:
    """Only a path on this site; anything else (an open redirect) goes to the dashboard."""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("dashboard")


def with_page_headers(response: HttpResponse) -> HttpResponse:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Cache-Control", "no-cache, private")
    return response


class PortalRequest(HttpRequest):
    """A request that passed `verified_required`: its user is signed in and OTP-verified."""

    user: User


def otp_verified(user: User | AnonymousUser) -> bool:
    """Whether this session passed the second factor (django-otp's middleware adds
    `is_verified` to the user; a user without it has not)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(user.is_authenticated and is_verified is not None and is_verified())


def _idle_too_long(request: HttpRequest) -> bool:
    last = request.session.get(LAST_ACTIVITY_KEY)
    return last is not None and time.time() - last > settings.SESSION_IDLE_MINUTES * 60


def verified_required(*, activity: bool = True) -> Callable:
    """Pages need a signed-in, OTP-verified session.

    `activity=False` is for the background polling of the live timeline: it must not count as
    the person being active, or an open tab would keep a session alive forever.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if user.is_authenticated and _idle_too_long(request):
                logout(request)
            if not request.user.is_authenticated:
                if not activity:
                    return JsonResponse({"error": "signed out"}, status=401)
                return redirect(f"{reverse('login')}?next={request.get_full_path()}")
            if not otp_verified(request.user):
                if not activity:
                    return JsonResponse({"error": "not verified"}, status=401)
                return redirect(second_factor_url(request.user))
            if activity:
                request.session[LAST_ACTIVITY_KEY] = time.time()
            return with_page_headers(view(request, *args, **kwargs))

        return wrapper

    return decorate


def second_factor_url(user: User | AnonymousUser) -> str:
    """Where a user who passed the password goes next: the code, or enrolment if no device."""
    if selectors.user_has_confirmed_device(user=user):
        return reverse("login_otp")
    return reverse("enrol")


def pending_signin_start(request: HttpRequest, user: User) -> None:
    """Remember who passed the password. They are not logged in (for Django, the admin or the
    API) until the second factor is done, so a password alone never opens a session."""
    request.session.cycle_key()
    request.session[PENDING_USER_KEY] = {"id": user.pk, "at": time.time()}


def password_stage_required(view: Callable) -> Callable:
    """The sign-in steps between the password and the second factor; the view is given the
    person who passed the password as `pending_user`."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if otp_verified(request.user):
            return redirect("dashboard")
        pending = request.session.get(PENDING_USER_KEY) or {}
        user = None
        fresh = time.time() - pending.get("at", 0) <= PENDING_SIGNIN_SECONDS
        if pending and fresh and isinstance(pending.get("id"), int):
            user = User.objects.filter(pk=pending["id"], is_active=True).first()
        if user is None:
            request.session.pop(PENDING_USER_KEY, None)
            return redirect("login")
        return with_page_headers(view(request, *args, pending_user=user, **kwargs))

    return wrapper


def no_store(response: HttpResponse) -> HttpResponse:
    """For pages carrying secrets: no browser or proxy may keep a copy."""
    response.headers["Cache-Control"] = "no-store, max-age=0"
    response.headers["Pragma"] = "no-cache"
    return response
