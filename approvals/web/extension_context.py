"""What the request page shows about the grant's scope and extensions, for one viewer."""

from approvals import selectors
from approvals.models import AccessRequest
from approvals.web.access import PortalRequest
from approvals.web.forms import ExtensionAskForm, ExtensionRejectForm, FreshCodeForm


def extension_context(request: PortalRequest, access_request: AccessRequest) -> dict:
    scope = selectors.viewer_scope(user=request.user)
    return {
        "scope_view": selectors.scope_view(access_request),
        "extensions": selectors.extension_rows(scope=scope, access_request=access_request),
        "extension_ask_blocker": selectors.extension_ask_blocker(
            scope=scope, access_request=access_request
        ),
        "extension_minutes_left": selectors.extension_minutes_left(access_request),
        "original_deadline": selectors.original_deadline(access_request),
        "ask_form": ExtensionAskForm(),
        "extension_code_form": FreshCodeForm(prefix="ext"),
        "extension_reject_form": ExtensionRejectForm(),
    }
