"""The API's one error shape: {"error": {"code", "message", "fields"}} for every 4xx."""

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from approvals.errors import PortalError
from approvals.surfaces import error_status

DRF_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.Throttled, "throttled"),
    (exceptions.ParseError, "malformed_body"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.ValidationError, "invalid"),
]


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [f"{key}: {text}" for key, value in detail.items() for text in _flatten(value)]
    if isinstance(detail, list | tuple):
        return [text for item in detail for text in _flatten(item)]
    return [str(detail)]


def _validation(detail) -> tuple[str, dict[str, list[str]]]:
    if not isinstance(detail, dict):
        detail = {"non_field_errors": detail}
    fields = {str(name): _flatten(value) for name, value in detail.items()}
    message = "; ".join(
        text if name == "non_field_errors" else f"{name}: {text}"
        for name, texts in fields.items()
        for text in texts
    )
    return message, fields


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, PortalError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=error_status(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    response = exception_handler(exc, context)  # keeps WWW-Authenticate, Retry-After, Allow
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code = next((c for cls, c in DRF_CODES if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        message, fields = _validation(exc.detail)
        response.data = error_body(code, message or "the request is not valid", fields)
    elif isinstance(exc, exceptions.Throttled):
        seconds: float | None = getattr(exc, "wait", None)  # the stubs omit Throttled.wait
        wait = f"; retry in {round(seconds)} s" if seconds is not None else ""
        response.data = error_body(code, f"too many requests for this caller{wait}")
    else:
        message = "; ".join(_flatten(exc.detail))
        response.data = error_body(code, message)
    return response


def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """Unknown /api/ paths answer in the API's shape, not with an HTML page."""
    return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)
