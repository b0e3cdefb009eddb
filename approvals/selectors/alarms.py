"""Reads of security alarms: who may handle them and which ones each viewer sees."""

from django.db.models import Q

from approvals.models import AccessProfile, AccessRequest, Approval, SecurityAlarm
from approvals.selectors.people import ViewerScope, user_is_auditor


def user_may_handle_alarms(*, user) -> bool:
    """Approvers of any profile and auditors see and acknowledge (some) security alarms."""
    if not user.is_active:
        return False
    return (
        user_is_auditor(user=user)
        or user.groups.filter(pk__in=AccessProfile.objects.values("approver_group_id")).exists()
    )


def alarms_visible(*, scope: ViewerScope):
    """Auditors see every alarm. An approver sees the alarms of the profiles they approve and the
    system-wide ones (no profile: the watch, the guard), which concern whoever approves access;
    never another profile's. Anyone else sees none."""
    alarms = SecurityAlarm.objects.all()
    if scope.is_auditor:
        return alarms
    approves_any = AccessProfile.objects.filter(approver_group_id__in=scope.group_ids).exists()
    if not approves_any:
        return alarms.none()
    return alarms.filter(
        Q(profile__isnull=True) | Q(profile__approver_group_id__in=scope.group_ids)
    )


def alarm_involves(*, alarm: SecurityAlarm, user_id: int) -> bool:
    """Whether this person requested or signed the request the alarm is about."""
    if alarm.request_id is None:
        return False
    return (
        AccessRequest.objects.filter(pk=alarm.request_id, requester_id=user_id).exists()
        or Approval.objects.filter(request_id=alarm.request_id, approver_id=user_id).exists()
    )


def alarms_list(*, scope: ViewerScope, status: str | None = None):
    alarms = alarms_visible(scope=scope).select_related("profile").order_by("-opened_at", "-pk")
    return alarms.filter(status=status) if status else alarms
