"""Who people and programs are: TOTP devices, backup codes, API tokens, integration keys."""

import time
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from approvals.sealing import unseal

# How long a code handed out by `unused_code` must stay acceptable (typing, a slow browser).
UNUSED_CODE_MIN_LIFETIME_SECONDS = 10


class SealedTOTPDevice(TimestampMixin, ThrottlingMixin, Device):
    """A TOTP device whose seed is encrypted at rest.

    django-otp's own TOTPDevice keeps the seed in clear hex; a database dump must not let anyone
    sign approvals, so the seed is sealed and verification mirrors TOTPDevice.verify_token.
    """

    # What a verification writes, and only that: its save leaves the seed and `confirmed` (what
    # administration records) alone, so it needs no before-and-after comparison.
    VERIFICATION_FIELDS = (
        "last_t",
        "drift",
        "throttling_failure_timestamp",
        "throttling_failure_count",
        "last_used_at",
    )

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
        if not verified:
            self.throttle_increment(commit=False)
        self.save(update_fields=self.VERIFICATION_FIELDS)
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
        now = time.time()
        now_step = int((now - self.t0) // self.step)
        step = max(self.last_t + 1, now_step - self.tolerance)
        # A code about to lapse would be refused by the time it is typed and sent: skip it.
        lapses_at = self.t0 + (step + self.tolerance + 1) * self.step
        if lapses_at - now < UNUSED_CODE_MIN_LIFETIME_SECONDS:
            step += 1
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
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this the token is refused; set for every new one."
    )

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


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


class SigninThrottle(models.Model):
    """Failed sign-ins of one username from one address (username "" counts every name tried
    from the address). A row, locked while an attempt is judged, makes the count atomic across
    web processes; the delay it imposes only ever concerns that address, so an attacker cannot
    aim it at an approver signing in from elsewhere."""

    ANY_USERNAME = ""

    username = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=45)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    blocked_until = models.DateTimeField(null=True, blank=True)
    throttled_unreported = models.PositiveIntegerField(
        default=0, help_text="Refused attempts since the last signin.throttled event."
    )
    throttled_reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["username", "address"], name="one_signin_throttle_per_username_address"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username or '*'} from {self.address}"
