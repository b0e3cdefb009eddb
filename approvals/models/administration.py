"""Administration on the record: who a person is across accounts, and profile changes that wait
for a second administrator."""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from approvals.models.requests import AccessProfile

PERSON_IDENTIFIER_MAX_LENGTH = 254
# A proposal nobody confirmed within this long is dead: the second administrator must be
# confirming a change they can still remember being discussed.
PROFILE_CHANGE_LIFETIME = timedelta(days=3)


def person_identifier_normalise(identifier: str) -> str:
    """One spelling per person: e-mail addresses and SSO subjects compare case-insensitively."""
    return identifier.strip().lower()


class PersonIdentityManager(models.Manager["PersonIdentity"]):
    def persons_of(self, *, user_ids: Iterable[int | None]) -> dict[int, str]:
        """The person identifier of each of these accounts that carries one."""
        wanted = {user_id for user_id in user_ids if user_id is not None}
        if not wanted:
            return {}
        return dict(self.filter(user_id__in=wanted).values_list("user_id", "identifier"))


class PersonIdentity(models.Model):
    """The person behind an account (an e-mail address or an SSO subject), at most one per
    account. Two accounts with the same identifier are one person: their approvals count once."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="person_identity"
    )
    identifier = models.CharField(
        max_length=PERSON_IDENTIFIER_MAX_LENGTH,
        db_index=True,
        help_text="The person behind this account, e.g. their e-mail address or SSO subject. "
        "It names one person: accounts carrying the same identifier are that one person, and "
        "never count as two approvers (or as the requester and an approver).",
    )

    objects = PersonIdentityManager()

    class Meta:
        verbose_name = "person identifier"

    def __str__(self) -> str:
        return self.identifier

    def save(self, *args, **kwargs) -> None:
        self.identifier = person_identifier_normalise(self.identifier)
        super().save(*args, **kwargs)


class ProfileChangeStatus(models.TextChoices):
    PENDING = "pending", "Pending a second administrator"
    CONFIRMED = "confirmed", "Confirmed and applied"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ProfileChange(models.Model):
    """A change to who approves a profile, or fewer required approvals: proposed by one
    administrator, applied only when a different one confirms it with a TOTP code."""

    profile = models.ForeignKey(AccessProfile, on_delete=models.CASCADE, related_name="changes")
    status = models.CharField(
        max_length=16, choices=ProfileChangeStatus.choices, default=ProfileChangeStatus.PENDING
    )
    old_approver_group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    new_approver_group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    old_required_approvals = models.PositiveSmallIntegerField()
    new_required_approvals = models.PositiveSmallIntegerField()
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_by_name = models.CharField(max_length=150)
    proposed_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-proposed_at"]

    def __str__(self) -> str:
        return f"{self.profile} change #{self.pk} ({self.status})"

    @property
    def expires_at(self):
        return self.proposed_at + PROFILE_CHANGE_LIFETIME

    def is_expired(self, now=None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    def summary(self) -> dict[str, dict[str, object]]:
        """What changes, as {field: {"before": ..., "after": ...}} (only the fields that do)."""
        changes: dict[str, dict[str, object]] = {}
        if self.old_approver_group_id != self.new_approver_group_id:
            changes["approver_group"] = {
                "before": self.old_approver_group.name,
                "after": self.new_approver_group.name,
            }
        if self.old_required_approvals != self.new_required_approvals:
            changes["required_approvals"] = {
                "before": self.old_required_approvals,
                "after": self.new_required_approvals,
            }
        return changes
