"""Who is acting during a web request, for the administration record."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from approvals.services.administration_record import acting_as_whoever
from approvals.surfaces import event_source


class AdministrationActorMiddleware:
    """Changes made while serving a request (the admin above all) are recorded as made by the
    request's user, from the request's address. After the authentication middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Read when something administrative happens, not now: the API authenticates a token in
        # its view and then replaces request.user with the caller (DRF sets it on this request).
        with acting_as_whoever(lambda: getattr(request, "user", _NoUser), event_source(request)):
            return self.get_response(request)


class _NoUser:
    """A request before authentication: recorded as anonymous, never as a command."""

    is_authenticated = False
