"""Reads of the approvals domain."""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError

from approvals.errors import NotFound
from approvals.models import AccessProfile, AccessRequest, TimelineEvent


def user_is_approver_for(*, user, profile: AccessProfile) -> bool:
    return user.is_active and user.groups.filter(pk=profile.approver_group_id).exists()


def user_is_auditor(*, user) -> bool:
    return user.is_active and user.groups.filter(name=settings.AUDITORS_GROUP).exists()


def request_timeline(*, access_request: AccessRequest):
    return TimelineEvent.objects.filter(request=access_request).order_by("sequence")


def request_get(*, access_request_id) -> AccessRequest:
    try:
        return AccessRequest.objects.select_related("profile").get(pk=access_request_id)
    except (AccessRequest.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"no request {access_request_id}") from None
