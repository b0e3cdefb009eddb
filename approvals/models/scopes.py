"""Named scopes a profile offers: session policies that narrow its role for one request.

A request names one scope; what that scope means (its document, managed policies and networks,
together with the profile's networks) is part of the content its approvers sign, and is frozen
onto the request when the grant is activated (`AccessRequest.granted_scope`)."""

from django.core.exceptions import ValidationError
from django.db import models

from awsaccess.session_policies import network_problem

SCOPE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,48}[a-z0-9]$"


def networks_validator(value: object) -> None:
    """A list of CIDRs, each a network (what the admin may store in `allowed_networks`)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('A list of CIDRs, e.g. ["203.0.113.0/24"].')
    problems = [p for item in value if (p := network_problem(item)) is not None]
    if problems:
        raise ValidationError(problems)


class AccessScope(models.Model):
    """One named narrowing of a profile's role (`read-only`, `ec2-operator`, `full` …).

    Changed only through `approvals.services.scopes` (admin, `manage.py profile_scope`), which
    validates the document and puts every change on the record."""

    profile = models.ForeignKey(
        "approvals.AccessProfile", on_delete=models.PROTECT, related_name="scopes"
    )
    name = models.SlugField(max_length=50)
    description = models.CharField(max_length=300, blank=True)
    policy_document = models.JSONField(
        null=True,
        blank=True,
        help_text="Inline session policy (IAM JSON); empty for managed policies only.",
    )
    managed_policy_arns = models.JSONField(
        default=list, blank=True, help_text="Managed policies passed as PolicyArns."
    )
    allowed_networks = models.JSONField(
        default=list,
        blank=True,
        validators=[networks_validator],
        help_text="CIDRs the scope's sessions may call from, within the profile's own; empty: "
        "the profile's.",
    )
    is_default = models.BooleanField(default=False)
    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["profile", "name"]
        constraints = [
            models.UniqueConstraint(fields=["profile", "name"], name="scope_name_per_profile"),
            models.UniqueConstraint(
                fields=["profile"],
                condition=models.Q(is_default=True),
                name="one_default_scope_per_profile",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id}:{self.name}"


def scope_content(*, scope: AccessScope | None, profile_networks: list[str]) -> dict | None:
    """What a request's sessions may do and from where, as approvers sign it; None when the
    grant is the whole role from anywhere (the digest of such a request is as it always was)."""
    if scope is None and not profile_networks:
        return None
    return {
        "name": scope.name if scope else None,
        "policy": scope.policy_document if scope else None,
        "managed_policy_arns": list(scope.managed_policy_arns) if scope else [],
        "profile_networks": list(profile_networks),
        "scope_networks": list(scope.allowed_networks) if scope else [],
    }
