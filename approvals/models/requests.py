"""Access profiles, incident requests and their signatures, and the credentials a grant issues."""

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from approvals.models.scopes import networks_validator, scope_content
from approvals.sealing import seal
from awsaccess.types import AwsTarget, IssuedCredentials, OfflineCredential

TICKET_PATTERN = r"^[A-Z][A-Z0-9]{1,15}-[0-9]{1,10}$"
TICKET_MAX_LENGTH = 32
JUSTIFICATION_MAX_LENGTH = 2000
REASON_MAX_LENGTH = 1000
MAX_PROFILE_DURATION_MINUTES = 720

account_id_validator = RegexValidator(r"^\d{12}$", "An AWS account id is 12 digits.")
region_validator = RegexValidator(r"^[a-z]{2}(-[a-z]+)+-\d$", "Not an AWS region name.")
role_arn_validator = RegexValidator(
    r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$", "Not an IAM role ARN."
)
principal_arn_validator = RegexValidator(
    r"^arn:aws[a-z-]*:iam::\d{12}:(user|role)/[\w+=,.@/-]{1,512}$",
    "Not an IAM user or role ARN.",
)


class Status(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    ACTIVATING = "activating"
    ACTIVE = "active"
    REVOKING = "revoking"
    REVOKED = "revoked"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


# The lifecycle (DESIGN.md §3): the only moves `approvals.transitions` will make.
ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset(
        {Status.APPROVED, Status.REJECTED, Status.CANCELLED, Status.TIMED_OUT}
    ),
    Status.APPROVED: frozenset({Status.ACTIVATING}),
    Status.ACTIVATING: frozenset({Status.ACTIVE, Status.FAILED}),
    Status.ACTIVE: frozenset({Status.REVOKING}),
    Status.REVOKING: frozenset({Status.REVOKED}),
    Status.REVOKED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.TIMED_OUT: frozenset(),
    Status.FAILED: frozenset(),
}

TERMINAL_STATUSES = frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if not targets)


class RequestKind(models.TextChoices):
    PORTAL = "portal"  # asked for, signed and granted through the portal
    OFFLINE = "offline"  # an offline kit's opening, recorded when the portal saw it (issue 18)


class AccessProfile(models.Model):
    """One break-glass role in one AWS account, and who may approve its use."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=120)
    account_id = models.CharField(max_length=12, validators=[account_id_validator])
    region = models.CharField(max_length=32, validators=[region_validator])
    role_arn = models.CharField(max_length=600, validators=[role_arn_validator])
    principal_arn = models.CharField(
        max_length=600,
        validators=[principal_arn_validator],
        help_text="The break-glass principal that assumes the role once a grant is attached.",
    )
    role_max_session_seconds = models.PositiveIntegerField(
        default=3600, validators=[MinValueValidator(900), MaxValueValidator(43200)]
    )
    max_duration_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PROFILE_DURATION_MINUTES)],
    )
    approver_group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    required_approvals = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(2), MaxValueValidator(10)]
    )
    notify_emails = models.TextField(
        blank=True, help_text="Extra addresses for this profile's notices, comma-separated."
    )
    chat_webhook_url = models.URLField(
        max_length=500, blank=True, help_text="Slack-compatible incoming webhook for this profile."
    )
    allowed_networks = models.JSONField(
        default=list,
        blank=True,
        validators=[networks_validator],
        help_text=(
            "CIDRs the grants' sessions may call AWS from (calls AWS services make on their "
            "behalf excepted); empty: anywhere. Set with manage.py profile_networks."
        ),
    )
    deny_persistence = models.BooleanField(
        default=True,
        help_text=(
            "The role's protective boundary also denies the persistence moves (new IAM users, "
            "access keys, login profiles, widened policies or trust). Re-run provisioning after "
            "changing it."
        ),
    )
    role_policy_arns = models.TextField(
        blank=True,
        help_text=(
            "The managed policies the role should hold, one ARN per line: the guard alarms on any "
            "other attached, or any of these detached. Empty: not compared."
        ),
    )

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(required_approvals__gte=2),
                name="profile_requires_two_person_rule",
                violation_error_message="A profile needs at least two approvals.",
            ),
            models.CheckConstraint(
                condition=models.Q(max_duration_minutes__gte=1)
                & models.Q(max_duration_minutes__lte=MAX_PROFILE_DURATION_MINUTES),
                name="profile_duration_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def aws_target(self) -> AwsTarget:
        """The profile as the AWS engine sees it (plain values)."""
        return AwsTarget(
            account_id=self.account_id,
            region=self.region,
            role_arn=self.role_arn,
            principal_arn=self.principal_arn,
            max_session_seconds=self.role_max_session_seconds,
            protect_persistence=self.deny_persistence,
            offline_credentials=self.offline_credentials(),
        )

    def offline_credentials(self) -> tuple[OfflineCredential, ...]:
        """The live offline kits of every profile on this role: the role trusts all their users."""
        kits = (
            apps.get_model("approvals", "OfflineKit")  # approvals.models.kits imports this module
            .objects.filter(profile__role_arn=self.role_arn)
            .exclude(state="rotated")
            .order_by("id")
        )
        return tuple(
            OfflineCredential(kit.principal_arn, kit.access_key_id, kit.mfa_serial) for kit in kits
        )

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        if self.role_arn and f":{self.account_id}:" not in self.role_arn:
            errors["role_arn"] = "The role must be in the profile's account."
        if self.principal_arn and f":{self.account_id}:" not in self.principal_arn:
            errors["principal_arn"] = "The principal must be in the profile's account."
        # A grant is one STS session (DESIGN.md §4): a grant longer than the role's maximum
        # session would leave the requester with dead credentials before its deadline.
        if (
            self.max_duration_minutes
            and self.role_max_session_seconds
            and self.max_duration_minutes * 60 > self.role_max_session_seconds
        ):
            errors["max_duration_minutes"] = (
                f"A grant lasts one STS session: at most {self.role_max_session_seconds // 60} "
                "minutes, the role's maximum session duration (raise that on the role and here)."
            )
        if errors:
            raise ValidationError(errors)


class AccessRequest(models.Model):
    """An incident request for break-glass access. Its content never changes after creation."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    profile = models.ForeignKey(AccessProfile, on_delete=models.PROTECT, related_name="requests")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requester_name = models.CharField(max_length=150)
    opened_by = models.CharField(
        max_length=120,
        blank=True,
        help_text="The integration that opened it on the requester's behalf.",
    )
    ticket = models.CharField(max_length=TICKET_MAX_LENGTH)
    justification = models.TextField(max_length=JUSTIFICATION_MAX_LENGTH)
    duration_minutes = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    approval_deadline = models.DateTimeField()
    status_changed_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoke_requested_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    is_drill = models.BooleanField(default=False)
    kind = models.CharField(max_length=16, choices=RequestKind.choices, default=RequestKind.PORTAL)
    scope = models.ForeignKey(
        "approvals.AccessScope",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
        help_text="The scope asked for; what it means is signed with the request.",
    )
    granted_scope = models.JSONField(
        null=True,
        blank=True,
        help_text="The scope and networks as granted, frozen at activation.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"]),
            models.Index(fields=["status", "approval_deadline"]),
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["ticket"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(duration_minutes__gte=1), name="duration_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket} ({self.id})"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("Access requests are immutable; status changes go through transitions.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Access requests are part of the incident record and are never deleted.")

    @property
    def source_identity(self) -> str:
        """What CloudTrail will name the session by (sts:SourceIdentity): an offline opening's
        is the one its kit chose, so revoking the request denies that session."""
        if self.kind == RequestKind.OFFLINE:
            return self.offline_opening.source_identity
        return str(self.id)

    def content_digest(self) -> str:
        """SHA-256 of what an approver signs: a later change to any of it breaks the signature."""
        content: dict[str, object] = {
            "id": str(self.id),
            "profile": self.profile.slug,
            "account_id": self.profile.account_id,
            "role_arn": self.profile.role_arn,
            "principal_arn": self.profile.principal_arn,
            "requester_id": self.requester_id,
            "requester": self.requester_name,
            "ticket": self.ticket,
            "justification": self.justification,
            "duration_minutes": self.duration_minutes,
            "is_drill": self.is_drill,
            "created_at": self.created_at.isoformat(),
        }
        scope = self.scope_content()
        if scope is not None:
            # What the session may do and from where: an edit of the scope (or of the profile's
            # networks) before activation changes the digest, so earlier signatures stop counting.
            content["scope"] = scope
        encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode()).hexdigest()

    def scope_content(self) -> dict | None:
        """The scope and networks: as granted once activated, else as they stand now."""
        if self.granted_scope is not None:
            return dict(self.granted_scope)
        return scope_content(scope=self.scope, profile_networks=self.profile.allowed_networks)

    @property
    def time_to_access_ms(self) -> int | None:
        if self.approved_at and self.activated_at:
            return round((self.activated_at - self.approved_at).total_seconds() * 1000)
        return None

    @property
    def time_to_revoke_ms(self) -> int | None:
        """From the deadline (or the earlier revoke click) to confirmed revocation."""
        return self.time_to_revoke_ms_if_revoked_at(self.revoked_at)

    def time_to_revoke_ms_if_revoked_at(self, revoked_at: datetime | None) -> int | None:
        started = self.revoke_requested_at or self.expires_at
        if revoked_at is None or started is None:
            return None
        return max(0, round((revoked_at - started).total_seconds() * 1000))


class Decision(models.TextChoices):
    APPROVE = "approve"
    REJECT = "reject"


class Approval(models.Model):
    """One approver's TOTP-signed decision on one request."""

    request = models.ForeignKey(AccessRequest, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approver_name = models.CharField(max_length=150)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(max_length=REASON_MAX_LENGTH, blank=True)
    device_id = models.CharField(max_length=120, help_text="Persistent id of the TOTP device used.")
    content_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    # The Ed25519 signature made when the code verified (approvals/signatures.py), over
    # `signed_payload()`; the worker counts no approval whose signature fails.
    time_step = models.BigIntegerField(
        null=True, blank=True, help_text="The TOTP time step the code verified in."
    )
    signature_key_id = models.CharField(max_length=32, blank=True)
    signature = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"], name="one_signature_per_approver"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver_name} {self.decision} {self.request_id}"

    def signed_payload(self) -> dict:
        """What the approver's signature covers; the timeline event's detail carries the same
        fields, so anyone can check it with the public key."""
        return {
            "request": str(self.request_id),
            "content_digest": self.content_digest,
            "approver_id": self.approver_id,
            "device": self.device_id,
            "time_step": self.time_step,
            "decision": str(self.decision),
            "signed_at": self.created_at.isoformat(timespec="microseconds"),
        }


class IssuedCredential(models.Model):
    """The STS credentials of an active grant, sealed; wiped when the grant is revoked."""

    request = models.OneToOneField(
        AccessRequest, on_delete=models.PROTECT, related_name="credential"
    )
    sealed = models.TextField(help_text="Fernet token of the credentials JSON; empty once wiped.")
    access_key_id = models.CharField(max_length=128, help_text="Not secret; names the session.")
    expiration = models.DateTimeField()
    issued_at = models.DateTimeField()
    wiped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"credentials for {self.request_id}"

    @staticmethod
    def stored_fields(credentials: IssuedCredentials, issued_at: datetime) -> dict[str, Any]:
        """The columns a new STS session sets: its secrets sealed, key id and expiry in clear."""
        secrets = {
            "access_key_id": credentials.access_key_id,
            "secret_access_key": credentials.secret_access_key,
            "session_token": credentials.session_token,
        }
        return {
            "sealed": seal(json.dumps(secrets).encode()),
            "access_key_id": credentials.access_key_id,
            "expiration": credentials.expiration,
            "issued_at": issued_at,
        }
