"""The REST API: each view checks who is calling, validates the body, calls one service."""

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from approvals import selectors
from approvals.api.authentication import Caller, caller_of
from approvals.api.serializers import (
    ActivityFilterSerializer,
    ActivitySerializer,
    AlarmAcknowledgeSerializer,
    AlarmFilterSerializer,
    AlarmSerializer,
    CallerSerializer,
    CredentialsSerializer,
    ErrorSerializer,
    HealthSerializer,
    OtpReasonSerializer,
    OtpSerializer,
    ProfileSerializer,
    RequestFilterSerializer,
    RequestOpenSerializer,
    RequestSerializer,
    TimelineSerializer,
)
from approvals.errors import NotAllowed, NotFound
from approvals.models import AccessProfile, AccessRequest, SecurityAlarm
from approvals.services import alarms, api_access, requests
from approvals.surfaces import event_source


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    described = {
        400: "The body or a parameter is not valid.",
        401: "No credentials, or credentials that are unknown, revoked or expired.",
        403: "The caller may not do this (or the TOTP code was refused).",
        404: "No such object, or the caller may not see it.",
        409: "Someone else changed it first, or an Idempotency-Key was reused.",
        429: "Too many requests for this token or key; see Retry-After.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=described[code]) for code in codes}


AUTHENTICATED_ERRORS = (401, 403, 429)


def _visible_requests(caller: Caller) -> QuerySet[AccessRequest]:
    if caller.integration is not None:
        return selectors.requests_visible_to_integration(integration_name=caller.integration.name)
    return selectors.requests_visible(scope=selectors.viewer_scope(user=caller.user))


class CheckedCursor(CursorPagination):
    """A cursor is client text: a position that is not a value of the ordering field (a forged
    `p=garbage`) is an invalid cursor (404) like any other, not a failed query (500)."""

    def paginate_queryset(self, queryset, request, view=None):
        self.position_field = queryset.model._meta.get_field(self.ordering[0].lstrip("-"))
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                self.position_field.to_python(cursor.position)
            except (DjangoValidationError, ValueError):
                raise exceptions.NotFound(self.invalid_cursor_message) from None
        return cursor


class RequestCursor(CheckedCursor):
    ordering = ("-created_at", "-id")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class ActivityCursor(CheckedCursor):
    ordering = ("event_time", "id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


class AlarmCursor(CheckedCursor):
    ordering = ("-opened_at", "-id")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


@extend_schema(tags=["caller"])
class MeView(APIView):
    @extend_schema(
        summary="Who the credentials belong to (a cheap way to test a token or key)",
        responses={200: CallerSerializer, **_errors(*AUTHENTICATED_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        caller = caller_of(request)
        kind = "integration" if caller.integration else "person"
        return Response(CallerSerializer({"kind": kind, "name": caller.name}).data)


@extend_schema(tags=["profiles"])
class ProfileViewSet(GenericViewSet):
    queryset = AccessProfile.objects.all()
    serializer_class = ProfileSerializer
    pagination_class = None

    @extend_schema(
        summary="Access profiles the caller can request",
        responses={200: ProfileSerializer(many=True), **_errors(*AUTHENTICATED_ERRORS)},
    )
    def list(self, request: Request) -> Response:
        return Response(ProfileSerializer(AccessProfile.objects.all(), many=True).data)


@extend_schema(tags=["requests"])
class RequestViewSet(GenericViewSet):
    queryset = AccessRequest.objects.none()
    serializer_class = RequestSerializer
    pagination_class = RequestCursor

    def _get(self, request: Request, pk: str) -> AccessRequest:
        try:
            return _visible_requests(caller_of(request)).get(pk=pk)
        except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
            raise NotFound(f"no request {pk}") from None

    def _render(self, pk) -> dict:
        return RequestSerializer(selectors.request_get(access_request_id=pk)).data

    @extend_schema(
        summary="List visible requests, newest first (cursor pagination)",
        parameters=[RequestFilterSerializer],
        responses={200: RequestSerializer(many=True), **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    def list(self, request: Request) -> Response:
        filters = RequestFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        requests = selectors.requests_filtered(
            _visible_requests(caller_of(request)), **filters.validated_data
        )
        page = self.paginate_queryset(requests)
        return self.get_paginated_response(RequestSerializer(page, many=True).data)

    @extend_schema(
        summary="Open a request (integration keys name the requester)",
        request=RequestOpenSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Retries with the same key and body return the first response; "
                "the same key with another body is 409.",
            )
        ],
        responses={201: RequestSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 409)},
    )
    def create(self, request: Request) -> Response:
        caller = caller_of(request)
        source = event_source(request)

        def produce() -> tuple[int, dict]:
            body = RequestOpenSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            values = body.validated_data
            requester = requests.requester_resolve(
                named=values.get("requester") or "",
                caller=caller.user or AnonymousUser(),
                integration=caller.integration.name if caller.integration else "",
            )
            opened = requests.request_open(
                profile_slug=values["profile"],
                requester=requester,
                ticket=values["ticket"],
                justification=values["justification"],
                duration_minutes=values["duration_minutes"],
                scope=values.get("scope"),
                opened_by=caller.integration.name if caller.integration else "",
                actor=None if caller.integration else caller.user,
                source=source,
            )
            return status.HTTP_201_CREATED, self._render(opened.pk)

        key = request.headers.get("Idempotency-Key")
        if key is None:
            code, body = produce()
            return Response(body, status=code)
        body = request.data if isinstance(request.data, dict) else {"body": request.data}
        outcome = api_access.idempotency_run(
            caller=caller.idempotency_id, key=key, body=body, produce=produce
        )
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return Response(outcome.body, status=outcome.status, headers=headers)

    @extend_schema(
        summary="One request",
        responses={200: RequestSerializer, **_errors(*AUTHENTICATED_ERRORS, 404)},
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(RequestSerializer(self._get(request, pk)).data)

    @extend_schema(
        summary="Approve with the approver's current TOTP code",
        request=OtpSerializer,
        responses={200: RequestSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        caller = caller_of(request)
        person = caller.person("approve requests")
        access_request = self._get(request, pk)
        body = OtpSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        requests.request_approve(
            access_request_id=access_request.pk,
            approver=person,
            otp_code=body.validated_data["otp"],
            source=event_source(request),
        )
        return Response(self._render(access_request.pk))

    @extend_schema(
        summary="Reject with a reason and the approver's current TOTP code",
        request=OtpReasonSerializer,
        responses={200: RequestSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        caller = caller_of(request)
        person = caller.person("reject requests")
        access_request = self._get(request, pk)
        body = OtpReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        requests.request_reject(
            access_request_id=access_request.pk,
            approver=person,
            otp_code=body.validated_data["otp"],
            reason=body.validated_data["reason"],
            source=event_source(request),
        )
        return Response(self._render(access_request.pk))

    @extend_schema(
        summary="Withdraw a pending request (its requester, or the integration that opened it)",
        request=None,
        responses={200: RequestSerializer, **_errors(*AUTHENTICATED_ERRORS, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        caller = caller_of(request)
        access_request = self._get(request, pk)
        requests.request_cancel(
            access_request_id=access_request.pk,
            actor=caller.user,
            opened_by=caller.integration.name if caller.integration else "",
            source=event_source(request),
        )
        return Response(self._render(access_request.pk))

    @extend_schema(
        summary="Revoke active access now (requester or approver, with TOTP)",
        request=OtpReasonSerializer,
        responses={200: RequestSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        caller = caller_of(request)
        person = caller.person("revoke access")
        access_request = self._get(request, pk)
        body = OtpReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        requests.request_revoke(
            access_request_id=access_request.pk,
            actor=person,
            otp_code=body.validated_data["otp"],
            reason=body.validated_data["reason"],
            source=event_source(request),
        )
        return Response(self._render(access_request.pk))

    @extend_schema(
        summary="The requester's AWS credentials (TOTP required; recorded on the timeline)",
        request=OtpSerializer,
        responses={200: CredentialsSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    @action(detail=True, methods=["post"])
    def credentials(self, request: Request, pk: str) -> Response:
        caller = caller_of(request)
        person = caller.person("read credentials")
        access_request = self._get(request, pk)
        body = OtpSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = requests.credentials_reveal(
            access_request_id=access_request.pk,
            user=person,
            otp_code=body.validated_data["otp"],
            source=event_source(request),
        )
        response = Response(CredentialsSerializer(issued).data)
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response

    @extend_schema(
        summary="Every event of the request's hash chain, to verify it yourself",
        responses={200: TimelineSerializer, **_errors(*AUTHENTICATED_ERRORS, 404)},
    )
    @action(detail=True, methods=["get"])
    def timeline(self, request: Request, pk: str) -> Response:
        access_request = self._get(request, pk)
        timeline = selectors.request_timeline_verifiable(access_request=access_request)
        return Response(
            TimelineSerializer(
                {
                    "request": access_request.pk,
                    "chain": timeline.chain,
                    "head_sequence": timeline.head_sequence,
                    "head_hash": timeline.head_hash,
                    "events": timeline.events,
                }
            ).data
        )

    @extend_schema(
        summary="The AWS calls the request's sessions made, oldest first (cursor pagination)",
        description="Every CloudTrail-recorded call of a session carrying this request's source "
        "identity, including calls AWS refused (after revocation: outcome denied). Filters: "
        "mutating=true|false, errors=true|false. Same visibility as the request itself.",
        parameters=[ActivityFilterSerializer],
        responses={200: ActivitySerializer(many=True), **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    @action(detail=True, methods=["get"], pagination_class=ActivityCursor)
    def activity(self, request: Request, pk: str) -> Response:
        access_request = self._get(request, pk)
        filters = ActivityFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        calls = selectors.request_activity(access_request=access_request, **filters.validated_data)
        page = self.paginate_queryset(calls)
        return self.get_paginated_response(ActivitySerializer(page, many=True).data)


@extend_schema(tags=["alarms"])
class AlarmViewSet(GenericViewSet):
    queryset = SecurityAlarm.objects.none()
    serializer_class = AlarmSerializer
    pagination_class = AlarmCursor
    lookup_value_regex = "[0-9]+"

    def _require_handler(self, request: Request) -> User:
        person = caller_of(request).person("see security alarms")
        if not selectors.user_may_handle_alarms(user=person):
            raise NotAllowed("only approvers and auditors see security alarms")
        return person

    @extend_schema(
        summary="Security alarms the caller may see, newest first (auditors: all; approvers: their "
        "profiles' and the system-wide ones)",
        parameters=[AlarmFilterSerializer],
        responses={200: AlarmSerializer(many=True), **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    def list(self, request: Request) -> Response:
        person = self._require_handler(request)
        filters = AlarmFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        scope = selectors.viewer_scope(user=person)
        page = self.paginate_queryset(selectors.alarms_list(scope=scope, **filters.validated_data))
        return self.get_paginated_response(AlarmSerializer(page, many=True).data)

    @extend_schema(
        summary="Acknowledge an alarm with a note and the caller's current TOTP code",
        request=AlarmAcknowledgeSerializer,
        responses={200: AlarmSerializer, **_errors(400, *AUTHENTICATED_ERRORS, 404)},
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        person = self._require_handler(request)
        body = AlarmAcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alarm = alarms.alarm_acknowledge(
            alarm_id=int(pk),
            user=person,
            otp_code=body.validated_data["otp"],
            note=body.validated_data["note"],
            source=event_source(request),
        )
        return Response(AlarmSerializer(alarm).data)


@extend_schema(tags=["health"])
class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        summary="Database, broker, worker and sweeper: alive, and last seen how long ago",
        auth=[],
        responses={
            200: HealthSerializer,
            503: OpenApiResponse(HealthSerializer, description="Something is down; see reasons."),
        },
    )
    def get(self, request: Request) -> Response:
        components = selectors.health_check()
        reasons = [c.reason for c in components if not c.ok]
        body = HealthSerializer(
            {
                "status": "failing" if reasons else "ok",
                "reasons": reasons,
                "components": components,
            }
        ).data
        response = Response(body, status=503 if reasons else 200)
        response["Cache-Control"] = "no-store"
        return response
