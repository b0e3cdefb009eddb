"""Scopes and source networks: what a profile's grants may do and from where.

Administrators define them (admin, `manage.py profile_scope` / `profile_networks`); every change
is validated here and put on the record. A request names a scope when it is opened; what the
scope means is part of the content its approvers sign (`AccessRequest.content_digest`), so an
edit while the request waits for signatures changes that digest and the earlier signatures stop
counting. Activation freezes the scope onto the request: the session gets exactly what was
signed, and later edits never change a live grant.
"""

import ipaddress
import json
import re
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.errors import RequestInvalid
from approvals.models import (
    SCOPE_NAME_PATTERN,
    AccessProfile,
    AccessRequest,
    AccessScope,
    Status,
    scope_content,
)
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append
from awsaccess import session_policies
from awsaccess.types import SessionScope

# Requests whose scope is not frozen yet: an edit changes what their approvers sign.
_UNFROZEN = (Status.PENDING, Status.APPROVED)


def _invalid(field: str, problems: list[str], message: str) -> RequestInvalid:
    return RequestInvalid(message, fields={field: problems})


def networks_clean(networks: list[str], *, field: str = "networks") -> list[str]:
    """Allowed CIDRs, checked (RequestInvalid naming each bad one) and without repeats."""
    cleaned = list(dict.fromkeys(item.strip() for item in networks if item.strip()))
    problems = [p for c in cleaned if (p := session_policies.network_problem(c)) is not None]
    if len(cleaned) > session_policies.MAX_NETWORKS:
        problems.append(f"at most {session_policies.MAX_NETWORKS} networks")
    if problems:
        raise _invalid(field, problems, "The allowed networks are not valid.")
    return cleaned


def _networks_outside(cidrs: list[str], profile_networks: list[str]) -> list[str]:
    """The scope's networks not inside one of the profile's: both denies apply to a session, so
    such a network would look allowed on the scope while every call from it is refused."""
    if not profile_networks:
        return []
    outers = [ipaddress.ip_network(cidr) for cidr in profile_networks]
    problems = []
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        if not any(
            network.version == outer.version and network.subnet_of(outer)  # type: ignore[arg-type]
            for outer in outers
        ):
            problems.append(
                f"{cidr} is not within the profile's networks ({', '.join(profile_networks)})"
            )
    return problems


def _policy_parse(policy_text: str | None) -> dict | None:
    if policy_text is None or not policy_text.strip():
        return None
    problems = session_policies.policy_document_problems(policy_text)
    if problems:
        raise _invalid("policy", problems, "The scope's policy document cannot be used.")
    document = json.loads(policy_text)
    assert isinstance(document, dict)  # checked above
    return document


def _arns_clean(arns: list[str], profile: AccessProfile) -> list[str]:
    cleaned = list(dict.fromkeys(arn.strip() for arn in arns if arn.strip()))
    problems = [
        p
        for arn in cleaned
        if (p := session_policies.managed_policy_arn_problem(arn, account_id=profile.account_id))
    ]
    if problems:
        raise _invalid("managed_policy_arns", problems, "A managed policy ARN cannot be used.")
    return cleaned


def scope_check(
    *,
    profile: AccessProfile,
    name: str,
    policy_text: str | None,
    managed_policy_arns: list[str],
    networks: list[str],
) -> tuple[dict | None, list[str], list[str]]:
    """The scope's (document, ARNs, networks) if AWS would take them as a session policy, with
    the portal's own statements, within AWS's size limit; RequestInvalid naming the field."""
    if not re.match(SCOPE_NAME_PATTERN, name or ""):
        raise _invalid(
            "name",
            ["2-50 lower-case letters, digits and dashes, e.g. read-only"],
            "The scope's name is not valid.",
        )
    document = _policy_parse(policy_text)
    arns = _arns_clean(managed_policy_arns, profile)
    if document is None and not arns:
        raise _invalid(
            "policy",
            ["give a policy document, managed policy ARNs, or both"],
            "A scope narrows the role: it needs a policy document or managed policies.",
        )
    cidrs = networks_clean(networks)
    outside = _networks_outside(cidrs, list(profile.allowed_networks))
    if outside:
        raise _invalid("networks", outside, "A scope's networks narrow the profile's.")
    session_scope = SessionScope(
        name=name,
        policy=document,
        managed_policy_arns=tuple(arns),
        networks=tuple(n for n in (tuple(profile.allowed_networks), tuple(cidrs)) if n),
    )
    problem = session_policies.packed_size_problem(session_scope, expires_at=timezone.now())
    if problem:
        raise _invalid("policy", [problem], "The scope is too large for a session policy.")
    return document, arns, cidrs


def _scope_to_save(profile: AccessProfile, name: str, scope_id: int | None) -> AccessScope:
    """The scope an edit saves: the one edited (by id, so a new name renames it), else the one
    named, else a new one. A rename onto another scope's name is refused, never a merge."""
    named = AccessScope.objects.filter(profile=profile, name=name).first()
    if scope_id is None:
        return named or AccessScope(profile=profile, name=name, revision=0)
    if named is not None and named.pk != scope_id:
        raise _invalid(
            "name",
            [f"profile {profile.slug} already has a scope named {name}"],
            "The scope's name is taken.",
        )
    scope = AccessScope.objects.filter(pk=scope_id, profile=profile).first()
    if scope is None:
        raise _invalid("name", [f"no scope {scope_id} of {profile.slug}"], "No such scope.")
    return scope


def _scope_save_revision(
    *,
    profile: AccessProfile,
    scope_id: int | None,
    name: str,
    description: str,
    document: dict | None,
    arns: list[str],
    cidrs: list[str],
    make_default: bool,
) -> tuple[AccessScope, str | None]:
    """Inside the caller's transaction: the scope saved as its next revision (created at the
    first), and its name before (None when created)."""
    AccessProfile.objects.select_for_update().get(pk=profile.pk)  # one scope edit at a time
    scope = _scope_to_save(profile, name, scope_id)
    before = None if scope.pk is None else scope.name
    scope.name = name
    scope.description = description[:300]
    scope.policy_document = document
    scope.managed_policy_arns = arns
    scope.allowed_networks = cidrs
    scope.revision += 1
    scope.updated_at = timezone.now()
    if make_default:
        AccessScope.objects.filter(profile=profile, is_default=True).exclude(pk=scope.pk).update(
            is_default=False
        )
    scope.is_default = make_default  # a replaced or edited scope is default only if asked
    try:
        with transaction.atomic():
            scope.save()
    except IntegrityError:
        raise _invalid("name", ["another edit won"], "The scope changed meanwhile.") from None
    return scope, before


def scope_set(
    *,
    profile_slug: str,
    name: str,
    policy_text: str | None = None,
    managed_policy_arns: list[str] | None = None,
    networks: list[str] | None = None,
    description: str = "",
    make_default: bool = False,
    scope_id: int | None = None,
    actor: User | None = None,
    source: EventSource = SYSTEM_SOURCE,
) -> AccessScope:
    """Create or replace the profile's scope `name` (or, given `scope_id`, edit that scope,
    renaming it to `name`); on the record, with the requests whose signatures it makes stale."""
    profile = AccessProfile.objects.filter(slug=profile_slug).first()
    if profile is None:
        raise _invalid("profile", [f"unknown access profile {profile_slug!r}"], "No such profile.")
    document, arns, cidrs = scope_check(
        profile=profile,
        name=name,
        policy_text=policy_text,
        managed_policy_arns=managed_policy_arns or [],
        networks=networks or [],
    )
    with transaction.atomic():
        scope, before = _scope_save_revision(
            profile=profile,
            scope_id=scope_id,
            name=name,
            description=description,
            document=document,
            arns=arns,
            cidrs=cidrs,
            make_default=make_default,
        )
        content = scope_content(scope=scope, profile_networks=profile.allowed_networks)
        renamed = {"renamed_from": before} if before not in (None, name) else {}
        timeline_append(
            access_request=None,
            code="approvals.scope.created" if before is None else "approvals.scope.changed",
            actor=actor,
            detail={
                "profile": profile.slug,
                "revision": scope.revision,
                "default": scope.is_default,
                **renamed,
                **(content or {}),
            },
            source=source,
        )
        _unfrozen_requests_tell(
            AccessRequest.objects.filter(scope=scope, status__in=_UNFROZEN),
            what=f"scope {name} revision {scope.revision}",
            actor=actor,
            source=source,
        )
    return scope


def profile_networks_set(
    *,
    profile_slug: str,
    networks: list[str] | None,
    actor: User | None = None,
    source: EventSource = SYSTEM_SOURCE,
) -> AccessProfile:
    """The CIDRs the profile's sessions may call from (None: anywhere), on the record."""
    cidrs = networks_clean(networks or [])
    if networks is not None and not cidrs:
        raise _invalid("networks", ["name at least one CIDR, or allow any"], "No networks given.")
    with transaction.atomic():
        profile = AccessProfile.objects.select_for_update().filter(slug=profile_slug).first()
        if profile is None:
            raise _invalid(
                "profile", [f"unknown access profile {profile_slug!r}"], "No such profile."
            )
        _scopes_fit(profile, cidrs)
        before = list(profile.allowed_networks)
        AccessProfile.objects.filter(pk=profile.pk).update(allowed_networks=cidrs)
        profile.allowed_networks = cidrs
        timeline_append(
            access_request=None,
            code="approvals.profile.networks_changed",
            actor=actor,
            detail={"profile": profile.slug, "before": before, "networks": cidrs},
            source=source,
        )
        _unfrozen_requests_tell(
            AccessRequest.objects.filter(profile=profile, status__in=_UNFROZEN),
            what=f"the allowed networks of {profile.slug}",
            actor=actor,
            source=source,
        )
    return profile


def _scopes_fit(profile: AccessProfile, cidrs: list[str]) -> None:
    """Each of the profile's scopes still passes its check under the new networks (its own lie
    within them, and the session policy stays within AWS's size limit)."""
    for scope in profile.scopes.all():
        try:
            scope_check(
                profile=AccessProfile(account_id=profile.account_id, allowed_networks=cidrs),
                name=scope.name,
                policy_text=json.dumps(scope.policy_document) if scope.policy_document else None,
                managed_policy_arns=scope.managed_policy_arns,
                networks=scope.allowed_networks,
            )
        except RequestInvalid as invalid:
            problems = [f"scope {scope.name}: {p}" for ps in invalid.fields.values() for p in ps]
            raise _invalid(
                "networks", problems, "A scope of the profile does not fit these networks."
            ) from None


def _unfrozen_requests_tell(
    requests: Any, *, what: str, actor: User | None, source: EventSource
) -> None:
    """Each waiting request's record says its content changed: the new digest, and how many of
    its signatures signed something else and no longer count."""
    for access_request in requests.select_related("profile", "scope"):
        digest = access_request.content_digest()
        stale = access_request.approvals.exclude(content_digest=digest).count()
        timeline_append(
            access_request=access_request,
            code="approvals.request.content_changed",
            actor=actor,
            outcome="warning" if stale else "success",
            detail={"changed": what, "content_digest": digest, "stale_signatures": stale},
            source=source,
        )


def scope_for_request(*, profile: AccessProfile, name: str | None) -> AccessScope | None:
    """The scope a new request asks for: the one named, else the profile's default; a profile
    without scopes grants the whole role (RequestInvalid naming the `scope` field otherwise)."""
    scopes = {scope.name: scope for scope in profile.scopes.all()}
    offered = ", ".join(sorted(scopes)) or "none"
    if name:
        if name not in scopes:
            raise _invalid(
                "scope",
                [f"profile {profile.slug} offers no scope {name!r} (it offers: {offered})"],
                "The request is not valid.",
            )
        return scopes[name]
    default = next((scope for scope in scopes.values() if scope.is_default), None)
    if scopes and default is None:
        raise _invalid(
            "scope",
            [f"profile {profile.slug} has no default scope: choose one of {offered}"],
            "The request is not valid.",
        )
    return default


def scope_freeze(*, access_request: AccessRequest) -> None:
    """At activation, in the transaction that locks the request: the scope as it stands now
    (its row locked, so an edit cannot slip between the signatures' check and the grant) becomes
    the request's granted scope, which its digest covers from then on."""
    if access_request.scope_id is not None:
        access_request.scope = AccessScope.objects.select_for_update().get(
            pk=access_request.scope_id
        )
    content = scope_content(
        scope=access_request.scope, profile_networks=access_request.profile.allowed_networks
    )
    if content is None:
        return
    AccessRequest.objects.filter(pk=access_request.pk).update(granted_scope=content)
    access_request.granted_scope = content


def session_scope_of(access_request: AccessRequest) -> SessionScope | None:
    """The request's scope as the AWS engine takes it."""
    content = access_request.scope_content()
    if content is None:
        return None
    return SessionScope(
        name=content["name"] or "",
        policy=content["policy"],
        managed_policy_arns=tuple(content["managed_policy_arns"]),
        networks=tuple(
            tuple(cidrs)
            for cidrs in (content["profile_networks"], content["scope_networks"])
            if cidrs
        ),
    )
