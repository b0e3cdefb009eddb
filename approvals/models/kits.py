"""The offline kits (issue 18): what the portal knows of each, never a usable copy of its key,
and each opening of one, reconciled into an incident record of its own."""

from django.db import models

from approvals.models.requests import AccessProfile, AccessRequest


class KitState(models.TextChoices):
    SEALED = "sealed"  # no opening known
    EXPOSED = "exposed"  # opened (seen in CloudTrail or by its record): rotate it
    ROTATED = "rotated"  # its key and MFA device are deleted; a successor replaced it


class OfflineKit(models.Model):
    """One sealed kit: the id, fingerprint and access key id, the custodians' names, and the
    public key that verifies the records of its openings. The secrets are only in the kit file,
    sealed under a key that only `threshold` custodians' shares together recover."""

    id = models.CharField(primary_key=True, max_length=16)
    profile = models.ForeignKey(
        AccessProfile, on_delete=models.PROTECT, related_name="offline_kits"
    )
    fingerprint = models.CharField(max_length=32)
    principal_arn = models.CharField(max_length=600)
    access_key_id = models.CharField(max_length=128, help_text="Not secret; names the key.")
    mfa_serial = models.CharField(max_length=600, help_text="Not secret; names the MFA device.")
    record_public_key = models.CharField(max_length=64, help_text="Ed25519, hex.")
    custodians = models.JSONField(help_text="The custodians' names, one share each.")
    threshold = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=16, choices=KitState.choices, default=KitState.SEALED)
    created_at = models.DateTimeField()
    exposed_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaces"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=2), name="kit_requires_two_custodians"
            ),
        ]

    def __str__(self) -> str:
        return f"kit {self.id} of {self.profile_id} ({self.state})"


class OfflineOpening(models.Model):
    """One opening of a kit (one `offline-` source identity) and the incident request that
    records it; the custodians' signed local record once someone imports it."""

    kit = models.ForeignKey(OfflineKit, on_delete=models.PROTECT, related_name="openings")
    source_identity = models.CharField(max_length=64, unique=True)
    request = models.OneToOneField(
        AccessRequest, on_delete=models.PROTECT, related_name="offline_opening"
    )
    seen_at = models.DateTimeField(help_text="When AWS (or the record) first showed it.")
    record = models.JSONField(null=True, blank=True, help_text="The signed local record.")
    record_imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"opening {self.source_identity}"
