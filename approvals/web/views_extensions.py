"""Pages' side of extensions: the requester asks for more time, approvers sign or reject it."""

from django.http import HttpResponse
from django.views.decorators.http import require_POST

from approvals.models import Decision
from approvals.services import extensions
from approvals.surfaces import event_source
from approvals.web.access import PortalRequest, verified_required
from approvals.web.forms import ExtensionAskForm, ExtensionRejectForm, FreshCodeForm
from approvals.web.views_requests import _visible, page_action


@require_POST
@verified_required()
def extension_ask(request: PortalRequest, access_request_id) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    return page_action(
        request,
        access_request,
        lambda data: extensions.extension_ask(
            access_request_id=access_request.pk,
            requester=request.user,
            minutes=data["minutes"],
            reason=data["reason"],
            source=event_source(request),
        ),
        form=ExtensionAskForm(request.POST),
        form_key="ask_form",
        invalid="Give the minutes (a whole number) and a reason.",
        done="Extension asked for: two approvers must sign it.",
    )


@require_POST
@verified_required()
def extension_sign(
    request: PortalRequest, access_request_id, extension_id, verdict: str
) -> HttpResponse:
    access_request = _visible(request, access_request_id)
    decision = Decision.REJECT if verdict == "reject" else Decision.APPROVE
    form = (
        ExtensionRejectForm(request.POST)
        if decision == Decision.REJECT
        else FreshCodeForm(request.POST, prefix="ext")
    )
    key = "extension_reject_form" if decision == Decision.REJECT else "extension_code_form"
    return page_action(
        request,
        access_request,
        lambda data: extensions.extension_sign(
            access_request_id=access_request.pk,
            extension_id=extension_id,
            approver=request.user,
            otp_code=data["code"],
            decision=decision,
            reason=data.get("reason", ""),
            source=event_source(request),
        ),
        form=form,
        form_key=key,
        invalid="Fill in the code (and the reason to reject).",
        done=f"Your {decision} of the extension is signed and recorded.",
    )
