"""What the two HTTP surfaces (pages and API) share, so they never disagree: where a request
came from, and which HTTP status a domain error becomes."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from approvals.errors import (
    IdempotencyConflict,
    IllegalTransition,
    NotAllowed,
    NotFound,
    PortalError,
    RequestInvalid,
    SignatureRefused,
    StaleTransition,
)
from approvals.timeline import EventSource

ERROR_STATUS: list[tuple[type[PortalError], int]] = [
    (RequestInvalid, 400),
    (NotFound, 404),
    (NotAllowed, 403),
    (SignatureRefused, 403),
    (IllegalTransition, 409),
    (StaleTransition, 409),
    (IdempotencyConflict, 409),
]


def error_status(error: PortalError) -> int:
    """The HTTP status of a refusal: the same on a page and in the API."""
    return next((status for cls, status in ERROR_STATUS if isinstance(error, cls)), 400)


def client_address(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or, behind BREAKGLASS_TRUSTED_PROXY_COUNT proxies of
    our own, the address the outermost of them saw (the n-th entry of X-Forwarded-For counted
    from the right). Entries further left are written by the client and never trusted."""
    proxies = settings.TRUSTED_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR") or None
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    if len(hops) < proxies:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:
        return remote


def event_source(request: HttpRequest) -> EventSource:
    """Where an action came from, as the timeline records it."""
    return EventSource(
        ip=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
    )
