"""What the portal sends out: signed webhooks and notifications, each attempt recorded."""

import uuid

from django.db import models

from approvals.models.identity import IntegrationKey
from approvals.models.requests import AccessRequest
from approvals.models.watch import SecurityAlarm


class WebhookEndpoint(models.Model):
    """Where an integration wants state changes and alarms POSTed, signed with HMAC-SHA256."""

    integration = models.ForeignKey(
        IntegrationKey, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    sealed_secret = models.TextField(help_text="Signing secret, sealed at rest.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint, with every attempt's outcome (visible in the admin)."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=100)
    payload = models.JSONField()
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attempt_log = models.JSONField(default=list)
    report_request = models.ForeignKey(
        AccessRequest,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="An ended request whose incident report is added at the first attempt.",
    )

    def __str__(self) -> str:
        return f"{self.event} -> {self.endpoint}"


class NotificationDelivery(models.Model):
    """One notification to one channel, with every attempt recorded."""

    channel = models.CharField(max_length=20, help_text="email or chat")
    target = models.CharField(max_length=500)
    event = models.CharField(max_length=100)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    request = models.ForeignKey(
        AccessRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    alarm = models.ForeignKey(
        SecurityAlarm,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    status = models.CharField(max_length=16, default="pending")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.channel}:{self.event} -> {self.target}"
