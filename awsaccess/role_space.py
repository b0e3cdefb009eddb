"""The role's inline-policy space, where revocation denies live: listing, writing and deleting
them, pruning the expired and the counterfeit ones, and the fallback when the space is genuinely
full of the portal's own live denies (issue 12). A part of the AccessEngine."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from awsaccess import policies, revocation_denies
from awsaccess.errors import (
    PermanentAwsError,
    TransientAwsError,
    aws_call,
    error_code,
    translate,
)
from awsaccess.types import AwsTarget, Grant

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)


class RevocationUnconfirmedError(TransientAwsError):
    """AWS does not hold what the revocation wrote (a session of the role racing us, or someone
    else's write): not confirmed, and retried like any AWS error that may pass."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(operation, "RevocationUnconfirmed", reason)


class RoleSpace:
    """Mixed into the AccessEngine, which provides the broker's IAM client."""

    def _iam(self) -> IAMClient:
        raise NotImplementedError

    def _make_room(self, target: AwsTarget, grant: Grant, now: datetime) -> datetime | None:
        """The role's inline policies are full: prune the expired denies and the counterfeit
        ones (a `breakglass-revoked-*` name not holding the deny it names, or one no revocation
        could have written: revocation_denies.revocation_deny_plausible), and only if the space is
        genuinely full of our own live denies, replace them all with one deny of every session
        issued up to now → that moment (None when pruning made room).

        No revoked session may regain access on the way, so the wide deny first overwrites one
        existing deny in place (PutRolePolicy of an existing name is atomic), and only then are
        the others deleted. It cuts the other live grants' sessions too: the caller re-issues
        them (sessions issued after the returned moment are untouched)."""
        if self.revocations_prune(target, now=now) or self._counterfeits_prune(target, now):
            return None
        foreign = [
            name
            for name in self._role_policy_names(target)
            if not name.startswith(policies.REVOCATION_POLICY_PREFIX)
        ]
        covered = self._revocation_policy_names(target)
        if foreign or not covered:
            raise PermanentAwsError(
                "iam:PutRolePolicy",
                "LimitExceeded",
                "role inline policies leave no room"
                + (f"; not the portal's: {', '.join(sorted(foreign))}" if foreign else ""),
            )
        logger.warning(
            "role %s revocation policies full: revoking all older sessions", target.role_arn
        )
        not_after = policies.revocation_not_after(target, grant, now)
        for name in covered:
            parsed = policies.parse_revocation_policy_name(name)
            if parsed is not None:
                not_after = max(not_after, parsed[1])
        # Conditions compare whole seconds: the next whole second covers every session so far.
        issued_before = now.replace(microsecond=0) + timedelta(seconds=1)
        wide = policies.to_json(policies.revoke_older_sessions_policy(issued_before))
        first, rest = covered[0], covered[1:]
        self._put_role_policy(target, first, wide)
        for name in rest:
            self._delete_role_policy(target, name)
        older_name = policies.revoke_older_sessions_policy_name(issued_before, not_after)
        self._put_role_policy(target, older_name, wide)
        # Every revoked request now relies on it: confirmed before the last copy goes.
        self._role_policy_confirm(
            target, older_name, policies.revoke_older_sessions_policy(issued_before)
        )
        self._delete_role_policy(target, first)
        return issued_before

    def _role_policy_confirm(self, target: AwsTarget, name: str, document: dict) -> None:
        try:
            with aws_call("iam:GetRolePolicy"):
                live = self._iam().get_role_policy(RoleName=target.role_name, PolicyName=name)
        except PermanentAwsError as error:
            if error.code != "NoSuchEntity":
                raise
            raise RevocationUnconfirmedError(
                "iam:GetRolePolicy", "the deny just written is gone"
            ) from None
        if not policies.same_document(live["PolicyDocument"], document):
            raise RevocationUnconfirmedError(
                "iam:GetRolePolicy", "the role holds another document than the deny written"
            )

    def _counterfeits_prune(self, target: AwsTarget, now: datetime) -> int:
        """Delete `breakglass-revoked-*` policies that do not hold the deny their name says, or
        whose name no revocation could have written by now (planted to take the space and force
        the fallback, which cuts every live grant); returns how many."""
        pruned = 0
        for name in self._revocation_policy_names(target):
            try:
                with aws_call("iam:GetRolePolicy"):
                    live = self._iam().get_role_policy(RoleName=target.role_name, PolicyName=name)
            except PermanentAwsError as error:
                if error.code == "NoSuchEntity":
                    continue
                raise
            genuine = revocation_denies.is_revocation_deny(
                name, live["PolicyDocument"]
            ) and revocation_denies.revocation_deny_plausible(name, target, now)
            if not genuine:
                logger.warning("deleting counterfeit revocation policy %s", name)
                self._delete_role_policy(target, name)
                pruned += 1
        return pruned

    def revocations_prune(self, target: AwsTarget, *, now: datetime | None = None) -> int:
        """Delete revocation denies whose sessions have all expired; returns how many."""
        now = now or datetime.now(UTC)
        pruned = 0
        for name in self._revocation_policy_names(target):
            parsed = policies.parse_revocation_policy_name(name)
            if parsed is not None and parsed[1] < now:
                self._delete_role_policy(target, name)
                pruned += 1
        if pruned:
            logger.info("pruned %d revocation policies on role=%s", pruned, target.role_arn)
        return pruned

    def _role_policy_names(self, target: AwsTarget) -> list[str]:
        names: list[str] = []
        with aws_call("iam:ListRolePolicies"):
            for page in (
                self._iam().get_paginator("list_role_policies").paginate(RoleName=target.role_name)
            ):
                names.extend(page["PolicyNames"])
        return names

    def _revocation_policy_names(self, target: AwsTarget) -> list[str]:
        return [
            name
            for name in self._role_policy_names(target)
            if name.startswith(policies.REVOCATION_POLICY_PREFIX)
        ]

    def _put_role_policy(self, target: AwsTarget, name: str, document: str) -> None:
        with aws_call("iam:PutRolePolicy"):
            self._iam().put_role_policy(
                RoleName=target.role_name, PolicyName=name, PolicyDocument=document
            )

    def _delete_role_policy(self, target: AwsTarget, name: str) -> None:
        try:
            self._iam().delete_role_policy(RoleName=target.role_name, PolicyName=name)
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise translate("iam:DeleteRolePolicy", error) from None
        except BotoCoreError as error:
            raise translate("iam:DeleteRolePolicy", error) from None
