"""Permissions boundaries: moto stores a role's boundary but never evaluates it, and has no user
boundaries at all. AWS allows an identity-based request only when the identity policies *and*
the boundary allow it; an explicit deny in either wins."""

from __future__ import annotations

import json
from urllib.parse import unquote

from moto.core.responses import ActionResult, EmptyResult
from moto.iam.exceptions import NotFoundException
from moto.iam.models import IAMBackend, User
from moto.iam.responses import IamResponse

_USER_BOUNDARY = "breakglass_permissions_boundary_arn"


def _user_boundary(self: User) -> dict[str, str] | None:
    arn = getattr(self, _USER_BOUNDARY, None)
    if not arn:
        return None
    return {"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn}


def _put_user_permissions_boundary(self: IamResponse) -> ActionResult:
    user = self.backend.get_user(self._get_param("UserName"))
    arn = self._get_param("PermissionsBoundary")
    self.backend.get_policy(arn)  # NoSuchEntity for a policy that does not exist, as on AWS
    setattr(user, _USER_BOUNDARY, arn)
    return EmptyResult()


def _delete_user_permissions_boundary(self: IamResponse) -> ActionResult:
    user = self.backend.get_user(self._get_param("UserName"))
    setattr(user, _USER_BOUNDARY, None)
    return EmptyResult()


def boundary_document(backend: IAMBackend, principal_arn: str, kind: str) -> dict | None:
    """The boundary document of a user, or of the role behind a session; None if unbounded.
    A boundary naming a policy that no longer exists allows nothing (fail closed)."""
    try:
        if kind == "AssumedRole":
            arn = backend.get_role_by_arn(principal_arn).permissions_boundary_arn
        else:
            arn = getattr(backend.get_user(principal_arn.rsplit("/", 1)[-1]), _USER_BOUNDARY, None)
    except NotFoundException:
        return None
    if not arn:
        return None
    try:
        policy = backend.get_policy(arn)
    except NotFoundException:
        return {"Statement": []}
    default = next(version for version in policy.versions if version.is_default)
    document = default.document
    return json.loads(unquote(document)) if isinstance(document, str) else dict(document)


def install() -> None:
    User.permissions_boundary = property(_user_boundary)  # type: ignore[attr-defined]  # a method moto lacks
    IamResponse.put_user_permissions_boundary = _put_user_permissions_boundary  # type: ignore[attr-defined]  # a method moto lacks
    IamResponse.delete_user_permissions_boundary = _delete_user_permissions_boundary  # type: ignore[attr-defined]  # a method moto lacks
