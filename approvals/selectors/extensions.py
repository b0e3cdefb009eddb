"""Reads for the request page's scope and extensions: what the grant may do, from where, and
what each viewer may do about its extensions (the services' own rules, asked beforehand)."""

import json
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Sum
from django.utils import timezone

from approvals import rules
from approvals.models import (
    OPEN_EXTENSION_STATUSES,
    AccessRequest,
    Decision,
    ExtensionStatus,
    GrantExtension,
)
from approvals.selectors.people import SignerOn, ViewerScope, signers_same_person_as


@dataclass(frozen=True)
class ScopeView:
    """The scope as approvers sign it, ready for a page."""

    name: str | None
    policy_json: str
    managed_policy_arns: list[str]
    profile_networks: list[str]
    scope_networks: list[str]
    edited_after_opening: bool  # the live scope changed after the request was opened

    @property
    def anywhere(self) -> bool:
        return not self.profile_networks and not self.scope_networks


def scope_view(access_request: AccessRequest) -> ScopeView | None:
    content = access_request.scope_content()
    if content is None:
        return None
    scope = access_request.scope
    return ScopeView(
        name=content["name"],
        policy_json=json.dumps(content["policy"], indent=2) if content["policy"] else "",
        managed_policy_arns=content["managed_policy_arns"],
        profile_networks=content["profile_networks"],
        scope_networks=content["scope_networks"],
        edited_after_opening=access_request.granted_scope is None
        and scope is not None
        and scope.updated_at > access_request.created_at,
    )


@dataclass(frozen=True)
class ExtensionRow:
    extension: GrantExtension
    approvals_given: int
    signing_blocker: str | None  # why this viewer cannot sign it (None: they can)


def extension_rows(*, scope: ViewerScope, access_request: AccessRequest) -> list[ExtensionRow]:
    now = timezone.now()
    extensions = list(
        access_request.extensions.prefetch_related("approvals").order_by("created_at")
    )
    signer_ids = [tuple(a.approver_id for a in e.approvals.all()) for e in extensions]
    # An extension's own signers count, as in the service; one read for all the extensions.
    same_person_as = signers_same_person_as(
        [SignerOn(scope.user_id, access_request, ids) for ids in signer_ids]
    )
    rows = []
    for extension, ids, shared in zip(extensions, signer_ids, same_person_as, strict=True):
        extension.request = access_request
        refusal = rules.extension_signing_refusal(
            extension=extension,
            signer_id=scope.user_id,
            is_approver=scope.is_approver_for(access_request.profile),
            already_signed=scope.user_id in ids,
            now=now,
            same_person_as=shared,
        )
        rows.append(
            ExtensionRow(
                extension=extension,
                approvals_given=sum(
                    1 for a in extension.approvals.all() if a.decision == Decision.APPROVE
                ),
                signing_blocker=refusal.why if refusal is not None else None,
            )
        )
    return rows


def extension_ask_blocker(
    *, scope: ViewerScope, access_request: AccessRequest, now: datetime | None = None
) -> str | None:
    """Why this viewer cannot ask for more time now (None: they can), with the minutes left."""
    applied = access_request.extensions.filter(status=ExtensionStatus.APPLIED).aggregate(
        total=Sum("minutes")
    )["total"]
    refusal = rules.extension_ask_refusal(
        access_request=access_request,
        user_id=scope.user_id,
        has_open_extension=access_request.extensions.filter(
            status__in=OPEN_EXTENSION_STATUSES
        ).exists(),
        total_minutes=access_request.duration_minutes + (applied or 0) + 1,
        max_minutes=access_request.profile.max_duration_minutes,
        now=now or timezone.now(),
    )
    return refusal.why if refusal is not None else None


def extension_minutes_left(access_request: AccessRequest) -> int:
    """How many more minutes the profile's maximum still allows this grant."""
    applied = access_request.extensions.filter(status=ExtensionStatus.APPLIED).aggregate(
        total=Sum("minutes")
    )["total"]
    return max(
        0,
        access_request.profile.max_duration_minutes
        - access_request.duration_minutes
        - (applied or 0),
    )


def original_deadline(access_request: AccessRequest) -> datetime | None:
    """The deadline the grant had before any extension."""
    first = (
        access_request.extensions.filter(status=ExtensionStatus.APPLIED)
        .order_by("applied_at")
        .first()
    )
    return first.from_expires_at if first is not None else access_request.expires_at
