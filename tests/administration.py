"""Setting up a test's world is administration too."""

from approvals.models import NotificationDelivery, SecurityAlarm
from approvals.services.administration_record import ALARM_KIND_PREFIX


def administration_alarms_cleared() -> None:
    """Creating a profile and its approvers is on the system chain with alarms
    (tests/approvals/test_administration.py proves it). Tests of everything else start from a
    set-up whose alarms were seen to; the record of it stays."""
    alarms = SecurityAlarm.objects.filter(kind__startswith=ALARM_KIND_PREFIX)
    NotificationDelivery.objects.filter(alarm__in=alarms).delete()
    alarms.delete()
