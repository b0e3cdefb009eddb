"""Sign-in (password, then TOTP or a backup code), TOTP enrolment, backup codes, sign-out."""

import time
from urllib.parse import urlencode

import django_otp
import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from approvals import selectors
from approvals.errors import PortalError
from approvals.models import SealedTOTPDevice
from approvals.services import api_access, identity
from approvals.surfaces import event_source
from approvals.web.access import (
    LAST_ACTIVITY_KEY,
    PENDING_USER_KEY,
    PortalRequest,
    no_store,
    otp_verified,
    password_stage_required,
    pending_signin_start,
    safe_next,
    second_factor_url,
    verified_required,
    with_page_headers,
)
from approvals.web.forms import (
    EnrolForm,
    FreshCodeForm,
    SecondFactorForm,
    SignInForm,
    TokenCreateForm,
    TokenRevokeForm,
)


def _signed_in(request: HttpRequest, device: SealedTOTPDevice, user: User) -> HttpResponse:
    next_url = request.session.pop("portal_next", "")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    django_otp.login(request, device)
    request.session.pop(PENDING_USER_KEY, None)
    request.session[LAST_ACTIVITY_KEY] = time.time()
    return redirect(safe_next(request, next_url))


@require_http_methods(["GET", "POST"])
def signin(request: HttpRequest) -> HttpResponse:
    if otp_verified(request.user):
        return redirect("dashboard")
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = identity.signin_password_check(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                source=event_source(request),
            )
        except PortalError as error:
            form.add_error(None, error.message)
        else:
            pending_signin_start(request, user)
            request.session["portal_next"] = safe_next(request, request.GET.get("next", ""))
            return redirect(second_factor_url(user))
    status = 400 if form.errors else 200
    response = render(request, "auth/signin.html", {"form": form})
    response.status_code = status
    return with_page_headers(response)


@require_http_methods(["GET", "POST"])
@password_stage_required
def signin_otp(request: HttpRequest, pending_user: User) -> HttpResponse:
    if not selectors.user_has_confirmed_device(user=pending_user):
        return redirect("enrol")
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = identity.signin_otp_verify(
                user=pending_user,
                code=form.cleaned_data["code"],
                source=event_source(request),
            )
        except PortalError as error:
            form.add_error("code", error.message)
        else:
            return _signed_in(request, device, pending_user)
    response = render(request, "auth/otp.html", {"form": form, "who": pending_user})
    if form.errors:
        response.status_code = 400
    return response


def _qr_svg(data: str) -> str:
    image = qrcode.make(
        data,
        image_factory=qrcode.image.svg.SvgPathImage,
        box_size=10,
        border=2,
    )
    return image.to_string(encoding="unicode")


@require_http_methods(["GET", "POST"])
@password_stage_required
def enrol(request: HttpRequest, pending_user: User) -> HttpResponse:
    user = pending_user
    try:
        device = identity.totp_enrolment_start(user=user)
    except PortalError:
        return redirect("login_otp")
    form = EnrolForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = identity.totp_enrolment_confirm(
                user=user, otp_code=form.cleaned_data["code"], source=event_source(request)
            )
        except PortalError as error:
            form.add_error("code", error.message)
        else:
            request.session["portal_next"] = "/account/"
            return _signed_in(request, device, pending_user)
    uri = device.config_url
    secret = uri.split("secret=", 1)[1].split("&", 1)[0]
    response = render(
        request,
        "auth/enrol.html",
        {
            "form": form,
            "who": user,
            "qr_svg": _qr_svg(uri),
            "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
        },
    )
    if form.errors:
        response.status_code = 400
    return no_store(response)


def admin_signin(request: HttpRequest) -> HttpResponse:
    """The admin's own login form (django-otp's) would be a second front door without the
    portal's throttle or record, and a password oracle; it only ever sends people to /login/.
    Whatever is posted here is never looked at."""
    target = request.GET.get("next", "")
    login_url = reverse("login")
    if target and safe_next(request, target) == target:
        login_url += "?" + urlencode({"next": target}, safe="/")
    return redirect(login_url)


@require_POST
def signout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@require_http_methods(["GET", "POST"])
@verified_required()
def account(request: PortalRequest) -> HttpResponse:
    """Backup codes, and the person's own API tokens (listed, created once-shown, revoked)."""
    action = request.POST.get("action", "backup_codes") if request.method == "POST" else ""
    code_form = FreshCodeForm(request.POST if action == "backup_codes" else None)
    token_form = TokenCreateForm(request.POST if action == "token_create" else None, prefix="token")
    codes: list[str] = []
    new_token = ""
    if action == "backup_codes" and code_form.is_valid():
        try:
            codes = identity.backup_codes_generate(
                user=request.user,
                otp_code=code_form.cleaned_data["code"],
                source=event_source(request),
            )
        except PortalError as error:
            code_form.add_error("code", error.message)
    elif action == "token_create" and token_form.is_valid():
        new_token = api_access.personal_token_create(
            user=request.user,
            name=token_form.cleaned_data["name"],
            days=token_form.cleaned_data["days"],
        )
    elif action == "token_revoke":
        revoke = TokenRevokeForm(request.POST)
        if revoke.is_valid():
            try:
                api_access.personal_token_revoke(
                    token_id=revoke.cleaned_data["token_id"], user=request.user
                )
            except PortalError as error:
                messages.error(request, error.message)
            else:
                messages.success(request, "The token was revoked; it no longer opens the API.")
        return no_store(redirect("account"))
    context = {
        "form": FreshCodeForm() if codes else code_form,
        "codes": codes,
        "unused": selectors.backup_codes_unused(user=request.user),
        "token_form": TokenCreateForm(prefix="token") if new_token else token_form,
        "new_token": new_token,
        "tokens": selectors.personal_tokens_of(user=request.user),
    }
    response = render(request, "auth/account.html", context)
    if code_form.errors or token_form.errors:
        response.status_code = 400
    return no_store(response)
