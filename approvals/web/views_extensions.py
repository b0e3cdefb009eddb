"""Pages' side of extensions: the requester asks for more time, approvers sign or reject it."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from approvals.errors import PortalError
from approvals.models import AccessRequest, Decision
from approvals.services import extensions
from approvals.surfaces import event_source
from approvals.web.access import PortalRequest, verified_required
from approvals.web.extension_context import extension_context
from approvals.web.forms import ExtensionAskForm, ExtensionRejectForm, FreshCodeForm
from approvals.web.views_requests import _action_refused, _visible


def _refused(
    request: PortalRequest, access_request: AccessRequest, error: PortalError, **forms
) -> HttpResponse:
    return _action_refused(
        request, access_request, error, extension_context(request, access_request, **forms)
    )


@require_POST
@verified_required()
def extension_ask(request: PortalRequest, access_request_id) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    form = ExtensionAskForm(request.POST)
    try:
        if not form.is_valid():
            raise PortalError("Give the minutes (a whole number) and a reason.", code="invalid")
        extensions.extension_ask(
            access_request_id=access_request.pk,
            requester=request.user,
            minutes=form.cleaned_data["minutes"],
            reason=form.cleaned_data["reason"],
            source=event_source(request),
        )
    except PortalError as error:
        return _refused(request, access_request, error, ask_form=form)
    messages.success(request, "Extension asked for: two approvers must sign it.")
    return redirect("request_detail", access_request_id=access_request.pk)


@require_POST
@verified_required()
def extension_sign(request: PortalRequest, access_request_id, extension_id, verdict: str):
    access_request = _visible(request, access_request_id)
    decision = Decision.REJECT if verdict == "reject" else Decision.APPROVE
    form = (
        ExtensionRejectForm(request.POST)
        if decision == Decision.REJECT
        else FreshCodeForm(request.POST, prefix="ext")
    )
    key = "extension_reject_form" if decision == Decision.REJECT else "extension_code_form"
    try:
        if not form.is_valid():
            raise PortalError("Fill in the code (and the reason to reject).", code="invalid")
        extensions.extension_sign(
            access_request_id=access_request.pk,
            extension_id=extension_id,
            approver=request.user,
            otp_code=form.cleaned_data["code"],
            decision=decision,
            reason=form.cleaned_data.get("reason", ""),
            source=event_source(request),
        )
    except PortalError as error:
        return _refused(request, access_request, error, **{key: form})
    messages.success(request, f"Your {decision} of the extension is signed and recorded.")
    return redirect("request_detail", access_request_id=access_request.pk)
