"""The request form, the request page with its live timeline, its actions, credentials, export."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals import selectors
from approvals.errors import NotFound, PortalError
from approvals.exports import record_as_csv, record_as_json
from approvals.models import TERMINAL_STATUSES, AccessRequest
from approvals.report import incident_report_json, incident_report_markdown
from approvals.services import requests
from approvals.surfaces import error_status, event_source
from approvals.web.access import PortalRequest, no_store, verified_required
from approvals.web.extension_context import extension_context
from approvals.web.forms import (
    FreshCodeForm,
    RejectForm,
    RequestForm,
    RevokeForm,
    refusal_attach,
)
from approvals.web.presentation import event_rows, remaining_text
from awsaccess.credentials_format import (
    console_signin_url,
    render_credential_process,
    render_credentials_file,
    render_shell_exports,
)
from awsaccess.errors import AwsError


def _visible(request: PortalRequest, access_request_id) -> AccessRequest:
    try:
        return selectors.request_visible_get(
            scope=selectors.viewer_scope(user=request.user), access_request_id=access_request_id
        )
    except NotFound:
        raise Http404("no such request") from None


@require_http_methods(["GET", "POST"])
@verified_required()
def request_new(request: PortalRequest) -> HttpResponse:
    choices = selectors.profiles_for_request_form()
    form = RequestForm(request.POST or None, profiles=[choice.profile for choice in choices])
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            access_request = requests.request_open(
                profile_slug=data["profile"],
                requester=request.user,
                ticket=data["ticket"],
                justification=data["justification"],
                duration_minutes=data["duration_minutes"],
                scope=data["scope"] or None,
                source=event_source(request),
            )
        except PortalError as error:
            refusal_attach(form, error)
        else:
            messages.success(request, "Request filed. Approvers can sign it now.")
            return redirect("request_detail", access_request_id=access_request.pk)
    response = render(request, "requests/new.html", {"form": form, "profiles": choices})
    if form.errors:
        response.status_code = 400
    return response


def _page_context(request: PortalRequest, access_request: AccessRequest) -> dict:
    scope = selectors.viewer_scope(user=request.user)
    page = selectors.request_page_get(scope=scope, access_request=access_request)
    now = timezone.now()
    return {
        "r": access_request,
        "page": page,
        "events": event_rows(selectors.request_timeline(access_request=access_request)),
        "activity": selectors.request_activity_panel(access_request=access_request),
        "terminal": access_request.status in TERMINAL_STATUSES,
        "deadline_text": remaining_text(access_request.approval_deadline, now),
        "expires_text": remaining_text(access_request.expires_at, now),
        **extension_context(request, access_request),
    }


@require_GET
@verified_required()
def request_detail(request: PortalRequest, access_request_id) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    return render(
        request,
        "requests/detail.html",
        {
            **_page_context(request, access_request),
            "code_form": FreshCodeForm(),
            "reject_form": RejectForm(),
            "revoke_form": RevokeForm(),
        },
    )


@require_GET
@verified_required(activity=False)
def request_live(request: PortalRequest, access_request_id) -> HttpResponse:
    """The live part of the request page, polled by static/portal.js."""
    access_request = _visible(request, access_request_id)
    return render(request, "requests/_live.html", _page_context(request, access_request))


def _action_refused(
    request: PortalRequest, access_request: AccessRequest, error: PortalError, forms: dict
) -> HttpResponse:
    context = {
        **_page_context(request, access_request),
        "code_form": FreshCodeForm(),
        "reject_form": RejectForm(),
        "revoke_form": RevokeForm(),
        **forms,
        "action_error": error.message,
    }
    return render(request, "requests/detail.html", context, status=error_status(error))


def page_action(
    request: PortalRequest,
    access_request: AccessRequest,
    act: Callable[[dict[str, Any]], object],
    *,
    done: str,
    form: forms.Form | None = None,
    form_key: str = "",
    invalid: str = "",
) -> HttpResponse:
    """One action of the request page: the form's shape is checked, `act` calls the service with
    the form's data, and the page comes back with `done`; or it is shown again saying why not,
    with the form (as `form_key`) as it was sent. `invalid`: what to say of a form that is not
    valid (by default, its code field's error)."""
    try:
        if form is not None and not form.is_valid():
            raise PortalError(invalid or str(form.errors["code"][0]), code="invalid")
        act(form.cleaned_data if form is not None else {})
    except PortalError as error:
        return _action_refused(
            request, access_request, error, {form_key: form} if form is not None else {}
        )
    messages.success(request, done)
    return redirect("request_detail", access_request_id=access_request.pk)


@require_POST
@verified_required()
def request_approve(request: PortalRequest, access_request_id) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    return page_action(
        request,
        access_request,
        lambda data: requests.request_approve(
            access_request_id=access_request.pk,
            approver=request.user,
            otp_code=data["code"],
            source=event_source(request),
        ),
        form=FreshCodeForm(request.POST),
        form_key="code_form",
        done="Your approval is signed and recorded.",
    )


@require_POST
@verified_required()
def request_reject(request: PortalRequest, access_request_id) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    return page_action(
        request,
        access_request,
        lambda data: requests.request_reject(
            access_request_id=access_request.pk,
            approver=request.user,
            otp_code=data["code"],
            reason=data["reason"],
            source=event_source(request),
        ),
        form=RejectForm(request.POST),
        form_key="reject_form",
        invalid="Fill in the code and the reason.",
        done="The request is rejected.",
    )


@require_POST
@verified_required()
def request_cancel(request: PortalRequest, access_request_id) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    return page_action(
        request,
        access_request,
        lambda _: requests.request_cancel(
            access_request_id=access_request.pk, actor=request.user, source=event_source(request)
        ),
        done="The request is cancelled.",
    )


@require_POST
@verified_required()
def request_revoke(request: PortalRequest, access_request_id) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    return page_action(
        request,
        access_request,
        lambda data: requests.request_revoke(
            access_request_id=access_request.pk,
            actor=request.user,
            otp_code=data["code"],
            reason=data["reason"],
            source=event_source(request),
        ),
        form=RevokeForm(request.POST),
        form_key="revoke_form",
        invalid="Fill in the code and the reason.",
        done="Revocation started: access is being taken away now.",
    )


@require_POST
@verified_required()
def request_credentials(request: PortalRequest, access_request_id) -> HttpResponse:
    """Credentials are only ever the answer to a POST with a fresh code: never in a URL, never
    cached, never stored in the session."""
    access_request = _visible(request, access_request_id)
    form = FreshCodeForm(request.POST)
    try:
        if not form.is_valid():
            raise PortalError(str(form.errors["code"][0]), code="invalid")
        credentials = requests.credentials_reveal(
            access_request_id=access_request.pk,
            user=request.user,
            otp_code=form.cleaned_data["code"],
            source=event_source(request),
        )
    except PortalError as error:
        return no_store(_action_refused(request, access_request, error, {"code_form": form}))
    console_url, console_error = None, ""
    if settings.AWS_ENDPOINT_URL is None:
        try:
            console_url = console_signin_url(
                credentials,
                issuer=settings.PUBLIC_URL,
                destination="https://console.aws.amazon.com/",
                now=timezone.now(),
            )
        except (AwsError, ValueError) as error:
            console_error = str(error)
    response = render(
        request,
        "requests/credentials.html",
        {
            "r": access_request,
            "credentials": credentials,
            "shell": render_shell_exports(credentials),
            "file_block": render_credentials_file(credentials),
            "process_json": render_credential_process(credentials),
            "console_url": console_url,
            "console_error": console_error,
            "expires_at": min(
                credentials.expiration, access_request.expires_at or credentials.expiration
            ),
            "expires_text": remaining_text(access_request.expires_at, timezone.now()),
        },
    )
    return no_store(response)


@require_GET
@verified_required()
def request_export(request: PortalRequest, access_request_id, fmt: str) -> HttpResponse:
    if fmt not in ("json", "csv"):
        raise Http404("export as json or csv")
    access_request = _visible(request, access_request_id)
    if fmt == "json":
        body, content_type = record_as_json(access_request), "application/json"
    else:
        body, content_type = record_as_csv(access_request), "text/csv; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="breakglass-{access_request.ticket}-{access_request.pk}.{fmt}"'
    )
    return response


@require_GET
@verified_required()
def request_report(request: PortalRequest, access_request_id, fmt: str) -> HttpResponse:
    """The incident report of a finished request, to attach to the incident ticket."""
    if fmt not in ("md", "json"):
        raise Http404("the report comes as md or json")
    access_request = _visible(request, access_request_id)
    if access_request.status not in TERMINAL_STATUSES:
        raise Http404("the incident report exists once the request has ended")
    if fmt == "md":
        body, content_type = (
            incident_report_markdown(access_request),
            "text/markdown; charset=utf-8",
        )
    else:
        body, content_type = incident_report_json(access_request), "application/json"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="incident-{access_request.ticket}-{access_request.pk}.{fmt}"'
    )
    return response
