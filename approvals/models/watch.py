"""Watching the glass: liveness, guard episodes, security alarms, observed uses, poison
messages, and drills."""

from django.conf import settings
from django.db import models

from approvals.models.requests import AccessProfile, AccessRequest, RequestKind


class Component(models.TextChoices):
    """The background components whose liveness /healthz and /metrics report."""

    WORKER = "worker"
    SWEEPER = "sweeper"
    WATCHER = "watcher"
    GUARD = "guard"


class Heartbeat(models.Model):
    """When each background component was last seen alive (for /healthz and alarms)."""

    component = models.CharField(max_length=32, primary_key=True, choices=Component.choices)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.component} @ {self.seen_at:%H:%M:%S}"


class GuardEpisode(models.Model):
    """When the guard last found a profile's watch intact: drift seen after that is one episode,
    so the same drift raises one alarm, and a recurrence after a repair raises a new one."""

    profile = models.OneToOneField(
        AccessProfile, on_delete=models.CASCADE, primary_key=True, related_name="guard_episode"
    )
    intact_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.profile_id} intact @ {self.intact_at:%H:%M:%S}"


class AlarmStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class SecurityAlarm(models.Model):
    """Something the security team must look at: unexplained use of a role, tampering with the
    watch, an overdue revocation. Never closed automatically; a person acknowledges it."""

    kind = models.CharField(
        max_length=40, help_text="e.g. unexplained_use, guard_drift, watcher_down"
    )
    title = models.CharField(max_length=300)
    detail = models.JSONField(default=dict)
    raw_event = models.JSONField(null=True, blank=True)
    profile = models.ForeignKey(
        AccessProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="alarms"
    )
    request = models.ForeignKey(
        AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="alarms"
    )
    dedup_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=AlarmStatus.choices, default=AlarmStatus.OPEN)
    opened_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_by_name = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["status", "opened_at"])]

    def __str__(self) -> str:
        return f"[{self.status}] {self.title}"


class ObservedUse(models.Model):
    """One AssumeRole of a break-glass role seen in CloudTrail, tied to its request if any."""

    event_id = models.CharField(max_length=100, unique=True, help_text="CloudTrail eventID")
    profile = models.ForeignKey(
        AccessProfile, null=True, on_delete=models.PROTECT, related_name="uses"
    )
    request = models.ForeignKey(
        AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="uses"
    )
    event_time = models.DateTimeField()
    role_arn = models.CharField(max_length=600)
    principal_arn = models.CharField(max_length=600, blank=True)
    session_name = models.CharField(max_length=64, blank=True)
    source_identity = models.CharField(max_length=64, blank=True)
    source_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    region = models.CharField(max_length=32, blank=True)
    explained = models.BooleanField()
    raw_event = models.JSONField()
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-event_time"]

    def __str__(self) -> str:
        return f"{self.role_arn} by {self.principal_arn} at {self.event_time}"


class PoisonMessage(models.Model):
    """A watch-queue message we could not parse: kept aside and reported, never lost."""

    queue_url = models.CharField(max_length=600)
    message_id = models.CharField(max_length=100, unique=True)
    body = models.TextField()
    error = models.TextField()
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"poison {self.message_id}"


class Drill(models.Model):
    """One end-to-end rehearsal of the break-glass procedure, with its timings."""

    profile = models.ForeignKey(AccessProfile, on_delete=models.PROTECT, related_name="drills")
    request = models.OneToOneField(
        AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="drill"
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    passed = models.BooleanField(default=False)
    failure = models.TextField(blank=True)
    time_to_approve_ms = models.PositiveIntegerField(null=True, blank=True)
    time_to_access_ms = models.PositiveIntegerField(null=True, blank=True)
    time_to_revoke_ms = models.PositiveIntegerField(null=True, blank=True)
    time_to_refused_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Revoke click until AWS refused the credentials."
    )
    # Which path was rehearsed: the portal's, or the offline kit's (issue 18), whose time to
    # access runs from the command to working credentials.
    path = models.CharField(max_length=16, choices=RequestKind.choices, default=RequestKind.PORTAL)
    kit = models.ForeignKey(
        "approvals.OfflineKit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="drills",
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"drill of {self.profile} at {self.started_at:%Y-%m-%d %H:%M}"
