"""What the sessions of a break-glass role did: one row per CloudTrail-recorded call."""

from django.db import models

from approvals.models.requests import AccessProfile, AccessRequest
from approvals.models.timeline import TimelineEvent


class ActivitySource(models.TextChoices):
    QUEUE = "queue", "watch queue"
    LOOKUP = "lookup", "CloudTrail LookupEvents backstop"


class SessionActivity(models.Model):
    """One call by a session of a profile's role, tied to its request by the session's source
    identity. Written once per CloudTrail eventID; sealed into the request's timeline in batches
    (`seal`), so any later change to a row breaks the seal's hash."""

    event_id = models.CharField(max_length=100, unique=True, help_text="CloudTrail eventID")
    profile = models.ForeignKey(AccessProfile, on_delete=models.PROTECT, related_name="activity")
    request = models.ForeignKey(
        AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="activity"
    )
    event_time = models.DateTimeField()
    service = models.CharField(max_length=100)
    action = models.CharField(max_length=100)
    region = models.CharField(max_length=32, blank=True)
    source_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    session_arn = models.CharField(max_length=600, blank=True)
    access_key_id = models.CharField(max_length=128, blank=True)
    source_identity = models.CharField(max_length=64, blank=True)
    request_parameters = models.JSONField(null=True, blank=True)
    resources = models.JSONField(default=list, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    read_only = models.BooleanField(null=True)
    management_event = models.BooleanField(null=True)
    unexplained = models.TextField(blank=True, help_text="Why it raised an alarm; empty if none.")
    source = models.CharField(max_length=10, choices=ActivitySource.choices)
    received_at = models.DateTimeField()
    seal = models.ForeignKey(
        TimelineEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="sealed"
    )

    class Meta:
        ordering = ["event_time", "id"]
        indexes = [
            models.Index(fields=["request", "event_time", "id"], name="activity_request_time"),
            models.Index(fields=["request", "seal"], name="activity_request_seal"),
        ]

    def __str__(self) -> str:
        return f"{self.service}:{self.action} at {self.event_time}"

    @property
    def mutating(self) -> bool:
        """Unknown counts as mutating: a reviewer should look at it."""
        return self.read_only is not True
