"""The break-glass domain: access profiles, incident requests, signatures, OTP devices, timeline.

Status is changed only by `approvals.transitions.request_transition`; requests and timeline events
are immutable once written.
"""

import hashlib
import json
import time
import uuid
from base64 import b32encode
from datetime import datetime
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from approvals.sealing import unseal
from awsaccess.types import AwsTarget

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
        )

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        if self.role_arn and f":{self.account_id}:" not in self.role_arn:
            errors["role_arn"] = "The role must be in the profile's account."
        if self.principal_arn and f":{self.account_id}:" not in self.principal_arn:
            errors["principal_arn"] = "The principal must be in the profile's account."
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
        """What CloudTrail will name the session by (sts:SourceIdentity)."""
        return str(self.id)

    def content_digest(self) -> str:
        """SHA-256 of what an approver signs: a later change to any of it breaks the signature."""
        content = {
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
        encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode()).hexdigest()

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

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"], name="one_signature_per_approver"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver_name} {self.decision} {self.request_id}"


class SealedTOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """A TOTP device whose seed is encrypted at rest.

    django-otp's own TOTPDevice keeps the seed in clear hex; a database dump must not let anyone
    sign approvals, so the seed is sealed and verification mirrors TOTPDevice.verify_token.
    """

    sealed_key = models.TextField()
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    @property
    def bin_key(self) -> bytes:
        return unseal(self.sealed_key)

    def _totp(self) -> TOTP:
        totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
        totp.time = time.time()
        return totp

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            code = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = self._totp()
            # min_t = last_t + 1 is what refuses a replayed code.
            verified = totp.verify(code, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    def code_was_already_used(self, token: str) -> bool:
        """True when the code is right for now but its time step was already consumed."""
        try:
            code = int(token)
        except (TypeError, ValueError):
            return False
        return bool(self._totp().verify(code, self.tolerance)) and self.last_t >= 0

    def unused_code(self) -> str | None:
        """The code for the oldest time step still accepted and not yet consumed, or None when
        every acceptable step is used. For drill identities the portal created itself (and
        tests): nobody else's code is ever computed by the portal."""
        now_step = int((time.time() - self.t0) // self.step)
        step = max(self.last_t + 1, now_step - self.tolerance)
        if step > now_step + self.tolerance:
            return None
        totp = TOTP(self.bin_key, self.step, self.t0, self.digits, 0)
        totp.time = self.t0 + step * self.step
        return f"{totp.token():0{self.digits}d}"

    def seconds_to_next_step(self) -> float:
        return self.step - (time.time() - self.t0) % self.step

    def get_throttle_factor(self) -> int:
        return settings.OTP_TOTP_THROTTLE_FACTOR

    @property
    def config_url(self) -> str:
        """otpauth:// URI for authenticator apps (carries the secret: show it, never log it)."""
        label = quote(f"{settings.OTP_TOTP_ISSUER}:{self.user.get_username()}")
        params = {
            "secret": b32encode(self.bin_key).decode().rstrip("="),
            "issuer": settings.OTP_TOTP_ISSUER,
            "algorithm": "SHA1",
            "digits": self.digits,
            "period": self.step,
        }
        return f"otpauth://totp/{label}?{urlencode(params, quote_via=quote)}"


class PersonalToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(
        max_length=12, help_text="The token's first characters, to tell them apart."
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class TimelineEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # The one update we allow: Django nulling the actor when a user is deleted. The copied
        # actor_name, which the hash covers, keeps the record intact.
        if set(kwargs) <= {"actor", "actor_id"} and all(v is None for v in kwargs.values()):
            return super().update(**kwargs)
        raise TypeError("Timeline events are append-only.")

    def delete(self):
        raise TypeError("Timeline events are append-only.")


class TimelineEvent(models.Model):
    """One step of an incident record, hash-chained to the previous step of the same chain.

    Each request has its own chain (`request:<id>`), so an integration can verify a request's
    record on its own; events not about a request (sign-in failures, alarms) share `system`.
    """

    chain = models.CharField(max_length=64)
    sequence = models.PositiveBigIntegerField()
    request = models.ForeignKey(
        AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    code = models.CharField(max_length=100)
    outcome = models.CharField(max_length=16, default="success")
    detail = models.JSONField(default=dict)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = TimelineEventQuerySet.as_manager()

    class Meta:
        ordering = ["chain", "sequence"]
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["chain", "sequence"], name="timeline_chain_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.chain}#{self.sequence} {self.code}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("Timeline events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Timeline events are append-only.")


class TimelineHead(models.Model):
    """The last event of each chain: serialises appends and lets verification detect truncation."""

    chain = models.CharField(max_length=64, primary_key=True)
    sequence = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.chain}@{self.sequence}"


def event_hash(
    *,
    chain: str,
    sequence: int,
    prev_hash: str,
    created_at: datetime,
    actor_name: str,
    code: str,
    outcome: str,
    detail: dict,
    source_ip: str | None,
    user_agent: str,
) -> str:
    """SHA-256 over a canonical JSON of everything an event says, and the previous hash."""
    payload = json.dumps(
        [
            chain,
            sequence,
            prev_hash,
            created_at.isoformat(timespec="microseconds"),
            actor_name,
            code,
            outcome,
            detail,
            source_ip or "",
            user_agent,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


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


class IntegrationKey(models.Model):
    """A ticketing/incident tool's API key. Only its SHA-256 is stored; shown once at creation.

    It may open requests on behalf of a named requester, read them, cancel its own, and read
    timelines; it can never sign, revoke or read credentials.
    """

    name = models.CharField(max_length=120, unique=True)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, replayed for retries."""

    caller = models.CharField(max_length=80, help_text="token:<id> or integration:<id>")
    key = models.CharField(max_length=200)
    body_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["caller", "key"], name="one_response_per_idempotency_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.caller} {self.key}"


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


class BackupCode(models.Model):
    """A single-use static backup code; only its hash is stored (generated once, shown once)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backup_codes"
    )
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"backup code of {self.user}"


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

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"drill of {self.profile} at {self.started_at:%Y-%m-%d %H:%M}"
