"""Extensions of an active grant: asked for by its requester, signed by two approvers like the
request itself, applied by the worker. The content signed never changes after creation."""

import hashlib
import json
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from approvals.models.requests import REASON_MAX_LENGTH, AccessRequest, Decision


class ExtensionStatus(models.TextChoices):
    PENDING = "pending"  # waiting for signatures
    APPROVED = "approved"  # signed; the worker is moving the deadline
    APPLIED = "applied"  # the deadline moved
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"  # not signed in time: the deadline stays
    FAILED = "failed"  # signed, but could not be applied (grant ended first, signatures invalid)


OPEN_EXTENSION_STATUSES = (ExtensionStatus.PENDING, ExtensionStatus.APPROVED)


class GrantExtension(models.Model):
    """N more minutes for an ACTIVE request, with a reason."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.ForeignKey(AccessRequest, on_delete=models.PROTECT, related_name="extensions")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requester_name = models.CharField(max_length=150)
    minutes = models.PositiveIntegerField()
    reason = models.TextField(max_length=REASON_MAX_LENGTH)
    from_expires_at = models.DateTimeField(help_text="The deadline when it was asked for.")
    status = models.CharField(
        max_length=16, choices=ExtensionStatus.choices, default=ExtensionStatus.PENDING
    )
    created_at = models.DateTimeField()
    approval_deadline = models.DateTimeField()
    approved_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    replaced_access_key_id = models.CharField(
        max_length=128,
        blank=True,
        help_text="The session key fresh credentials replaced (not secret; names the session).",
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "approval_deadline"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(minutes__gte=1), name="extension_minutes_positive"
            ),
            models.UniqueConstraint(
                fields=["request"],
                condition=models.Q(status__in=["pending", "approved"]),
                name="one_open_extension_per_request",
            ),
        ]

    def __str__(self) -> str:
        return f"+{self.minutes} min for {self.request_id}"

    @property
    def to_expires_at(self) -> datetime:
        """The deadline the approvers sign for: fixed when asked, whenever it is signed."""
        return self.from_expires_at + timedelta(minutes=self.minutes)

    def content_digest(self) -> str:
        """SHA-256 of what an approver of the extension signs, including the request's own
        signed content, so an extension signature cannot be moved to another grant."""
        content = {
            "extension": str(self.id),
            "request": str(self.request_id),
            "request_digest": self.request.content_digest(),
            "requester_id": self.requester_id,
            "requester": self.requester_name,
            "minutes": self.minutes,
            "reason": self.reason,
            "from_expires_at": self.from_expires_at.isoformat(),
            "to_expires_at": self.to_expires_at.isoformat(),
            "created_at": self.created_at.isoformat(),
        }
        encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode()).hexdigest()


class ExtensionApproval(models.Model):
    """One approver's TOTP-signed decision on one extension."""

    extension = models.ForeignKey(
        GrantExtension, on_delete=models.PROTECT, related_name="approvals"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approver_name = models.CharField(max_length=150)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(max_length=REASON_MAX_LENGTH, blank=True)
    device_id = models.CharField(max_length=120)
    content_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    # Signed with the portal's key (approvals.signatures) when the code verified, as approvals
    # are: the worker applies no extension whose signatures do not verify.
    time_step = models.BigIntegerField(null=True, blank=True)
    signature_key_id = models.CharField(max_length=32, blank=True)
    signature = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["extension", "approver"], name="one_extension_signature_per_approver"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver_name} {self.decision} {self.extension_id}"

    def signed_payload(self) -> dict:
        """What the approver's signature covers (the timeline event carries the same fields)."""
        return {
            "extension": str(self.extension_id),
            "content_digest": self.content_digest,
            "approver_id": self.approver_id,
            "device": self.device_id,
            "time_step": self.time_step,
            "decision": str(self.decision),
            "signed_at": self.created_at.isoformat(timespec="microseconds"),
        }
