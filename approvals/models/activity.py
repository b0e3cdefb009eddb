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


# IAM and the other global services record their calls in us-east-1, whatever the session's
# region: the backstop reads that region's history too.
HISTORY_GLOBAL_REGION = "us-east-1"


def history_regions(profile: AccessProfile) -> list[str]:
    """The regions whose CloudTrail history holds calls of the profile's sessions."""
    return list(dict.fromkeys([profile.region, HISTORY_GLOBAL_REGION]))


class ActivityLookupCursor(models.Model):
    """How far the LookupEvents backstop has read CloudTrail's history for one profile in one
    region: every event of the role's sessions from `covered_from` up to `complete_until` is on
    the record (or was looked at and found to be someone else's)."""

    profile = models.ForeignKey(AccessProfile, on_delete=models.CASCADE, related_name="cursors")
    region = models.CharField(max_length=32)
    covered_from = models.DateTimeField(help_text="The first look began here.")
    complete_until = models.DateTimeField()
    window_end = models.DateTimeField(
        null=True, blank=True, help_text="End of the window being read, while unfinished."
    )
    next_token = models.TextField(blank=True, help_text="Where the unfinished window resumes.")
    looked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "region"], name="one_cursor_per_region")
        ]

    def __str__(self) -> str:
        return f"{self.profile} {self.region}: complete until {self.complete_until}"
