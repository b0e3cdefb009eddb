"""Extensions of an active grant over the API: the requester asks, approvers sign with TOTP."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from approvals.api.authentication import caller_of
from approvals.api.serializers import (
    ExtensionAskSerializer,
    ExtensionSerializer,
    OtpReasonSerializer,
    OtpSerializer,
)
from approvals.api.views import AUTHENTICATED_ERRORS, _errors, _visible_requests
from approvals.errors import NotFound
from approvals.models import AccessRequest, Decision, GrantExtension
from approvals.services import extensions
from approvals.surfaces import event_source


@extend_schema(tags=["extensions"])
class ExtensionViewSet(GenericViewSet):
    queryset = GrantExtension.objects.none()
    serializer_class = ExtensionSerializer
    pagination_class = None

    def _request(self, request: Request, request_pk: str) -> AccessRequest:
        try:
            return _visible_requests(caller_of(request)).get(pk=request_pk)
        except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
            raise NotFound(f"no request {request_pk}") from None

    def _render(self, extension_id) -> dict:
        extension = GrantExtension.objects.prefetch_related("approvals").get(pk=extension_id)
        return ExtensionSerializer(extension).data

    @extend_schema(
        summary="The request's extensions, oldest first",
        responses={200: ExtensionSerializer(many=True), **_errors(*AUTHENTICATED_ERRORS, 404)},
    )
    def list(self, request: Request, request_pk: str) -> Response:
        access_request = self._request(request, request_pk)
        rows = access_request.extensions.prefetch_related("approvals").order_by("created_at")
        return Response(ExtensionSerializer(rows, many=True).data)

    @extend_schema(
        summary="Ask for more minutes on an active grant (its requester, with a reason)",
        request=ExtensionAskSerializer,
        responses={201: ExtensionSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    def create(self, request: Request, request_pk: str) -> Response:
        person = caller_of(request).person("ask for more time")
        access_request = self._request(request, request_pk)
        body = ExtensionAskSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        extension = extensions.extension_ask(
            access_request_id=access_request.pk,
            requester=person,
            minutes=body.validated_data["minutes"],
            reason=body.validated_data["reason"],
            source=event_source(request),
        )
        return Response(self._render(extension.pk), status=status.HTTP_201_CREATED)

    def _sign(self, request: Request, request_pk: str, pk: str, decision: Decision) -> Response:
        person = caller_of(request).person(f"{decision} extensions")
        access_request = self._request(request, request_pk)
        body = (OtpReasonSerializer if decision == Decision.REJECT else OtpSerializer)(
            data=request.data
        )
        body.is_valid(raise_exception=True)
        extensions.extension_sign(
            access_request_id=access_request.pk,
            extension_id=pk,
            approver=person,
            otp_code=body.validated_data["otp"],
            decision=decision,
            reason=body.validated_data.get("reason", ""),
            source=event_source(request),
        )
        return Response(self._render(pk))

    @extend_schema(
        summary="Approve an extension with the approver's current TOTP code",
        request=OtpSerializer,
        responses={200: ExtensionSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    def approve(self, request: Request, request_pk: str, pk: str) -> Response:
        return self._sign(request, request_pk, pk, Decision.APPROVE)

    @extend_schema(
        summary="Reject an extension with a reason and the approver's current TOTP code",
        request=OtpReasonSerializer,
        responses={200: ExtensionSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    def reject(self, request: Request, request_pk: str, pk: str) -> Response:
        return self._sign(request, request_pk, pk, Decision.REJECT)
