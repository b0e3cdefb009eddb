"""The worker's side of a grant: activate it in AWS (or fail cleanly), and drive its revocation.

Every step is idempotent and conditional on the request's status, so a duplicate message, a
restarted worker or the sweeper running the same step does no harm (DESIGN.md §5).
"""

import itertools
import re
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals import rules
from approvals.errors import StaleTransition
from approvals.models import (
    AccessProfile,
    AccessRequest,
    Decision,
    IssuedCredential,
    RequestKind,
    Status,
)
from approvals.selectors.people import signer_facts
from approvals.services import fallback
from approvals.services.alarms import alarm_open
from approvals.services.lifecycle import request_move
from approvals.services.queue import Job, RetryLater, enqueue_after_commit
from approvals.services.requests import RequestId, request_locked
from approvals.services.scopes import scope_freeze, session_scope_of
from approvals.services.signing import approvals_forgery
from approvals.timeline import timeline_append
from awsaccess import runtime
from awsaccess.engine import GrantExpiredError, PrincipalExpectation
from awsaccess.errors import AwsError, PermanentAwsError, TransientAwsError
from awsaccess.types import Grant, IssuedCredentials, PrincipalKeys

_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


def _aws_grant(access_request: AccessRequest) -> Grant:
    session_name = _SESSION_NAME_UNSAFE.sub("-", f"{access_request.ticket}-{access_request.pk}")
    assert access_request.expires_at is not None  # set when activation starts
    return Grant(
        request_id=access_request.source_identity,
        session_name=session_name[:64],
        tags={
            "breakglass-request": str(access_request.pk),
            "ticket": access_request.ticket,
            "requester": access_request.requester_name,
        },
        expires_at=access_request.expires_at,
        scope=session_scope_of(access_request),
    )


def aws_clients_prepare() -> int:
    """Build every AWS client an activation or revocation will use (the broker's, and each
    profile's principal's), so that no grant waits for one to be built. The worker calls this
    before it forks its processes, which inherit them. -> how many profiles were prepared."""
    engine = runtime.access_engine()
    prepared = 0
    for profile in AccessProfile.objects.order_by("pk"):
        try:
            keys: PrincipalKeys | None = runtime.principal_keys(profile.principal_arn)
        except runtime.MissingAwsKeys:
            keys = None  # activations will fail with the reason; revocations still need IAM
        engine.clients_prepare(profile.aws_target(), keys)
        prepared += 1
    return prepared


def _valid_approval_count(access_request: AccessRequest) -> int:
    """Approvals that still hold: signed this exact content, by a current, distinct approver
    (two accounts of one person count once)."""
    approvals = list(
        access_request.approvals.filter(decision=Decision.APPROVE).order_by("created_at", "pk")
    )
    facts = signer_facts(
        access_request=access_request, signer_ids=[approval.approver_id for approval in approvals]
    )
    counted: list[int | None] = []
    for approval in approvals:
        if rules.approval_still_counts(
            access_request=access_request,
            approval=approval,
            is_approver=approval.approver_id in facts.approver_ids,
            same_person_as=rules.person_shared_with(
                signer_id=approval.approver_id,
                requester_id=access_request.requester_id,
                other_signer_ids=counted,
                person_of=facts.person_of,
            ),
        ):
            counted.append(approval.approver_id)
    return len(counted)


def request_activate(*, access_request_id: RequestId) -> None:
    """APPROVED → ACTIVATING → ACTIVE: attach the grant, issue credentials, schedule revocation.

    Idempotent: anything but an APPROVED request is left alone, so a duplicate delivery is a
    no-op. `expires_at` is committed before any AWS call, so the sweeper always knows the deadline.
    """
    with transaction.atomic():
        access_request = request_locked(access_request_id)
        if access_request.status != Status.APPROVED:
            return
        forgery = approvals_forgery(access_request)
        if forgery is not None:
            _activation_refuse_forged(access_request, forgery)
            return
        scope_freeze(access_request=access_request)  # the digest covers the granted scope now
        valid = _valid_approval_count(access_request)
        expires_at = timezone.now() + timedelta(minutes=access_request.duration_minutes)
        request_move(
            access_request=access_request,
            to_status=Status.ACTIVATING,
            code="approvals.activation.started",
            detail={"expires_at": expires_at.isoformat(), "valid_approvals": valid},
            fields={"expires_at": expires_at},
        )
    required = access_request.profile.required_approvals
    if valid < required:
        activation_fail(
            access_request=access_request,
            reason=f"only {valid} of the {required} required approvals are still valid",
        )
        return
    credentials = _credentials_obtain(access_request)
    if credentials is not None:
        _activation_complete(access_request, credentials)


def _activation_refuse_forged(access_request: AccessRequest, forgery: str) -> None:
    """APPROVED → ACTIVATING → FAILED with an alarm, before any AWS call: approvals that do not
    verify mean someone wrote them into the database (the caller's transaction)."""
    reason = f"approvals do not verify: {forgery}"
    request_move(
        access_request=access_request,
        to_status=Status.ACTIVATING,
        code="approvals.activation.started",
        detail={"approvals_verified": False},
    )
    request_move(
        access_request=access_request,
        to_status=Status.FAILED,
        code="approvals.request.failed",
        outcome="failure",
        detail={"reason": reason},
        fields={"failure_reason": reason},
    )
    alarm_open(
        kind="approval_forged",
        title=f"Forged approval on request {access_request.ticket}: {forgery}",
        dedup_key=f"approval-forged:{access_request.pk}",
        detail={"reason": forgery},
        profile=access_request.profile,
        access_request=access_request,
    )


def _credentials_obtain(access_request: AccessRequest) -> IssuedCredentials | None:
    """Attach the grant and assume the role, retrying transient AWS errors for a bounded time
    (IAM is eventually consistent right after the attach, DESIGN.md §4). None: it failed, and
    the activation was failed cleanly."""
    engine = runtime.access_engine()
    target, grant = access_request.profile.aws_target(), _aws_grant(access_request)
    give_up_at = time.monotonic() + settings.ACTIVATION_RETRY_SECONDS
    attached = False
    for attempt in itertools.count(1):
        try:
            engine.grant_attach(target, grant)
            if not attached:
                attached = True
                timeline_append(
                    access_request=access_request,
                    code="approvals.activation.grant_attached",
                    detail={"principal": target.principal_arn, "role": target.role_arn},
                )
            keys = runtime.principal_keys(access_request.profile.principal_arn)
            return engine.credentials_issue(target, grant, keys)
        except TransientAwsError as exc:
            backoff = min(0.5 * 2**attempt, 8.0)
            if time.monotonic() + backoff > give_up_at:
                activation_fail(access_request=access_request, reason=f"AWS unavailable: {exc}")
                return None
            time.sleep(backoff)
        except (PermanentAwsError, runtime.MissingAwsKeys, GrantExpiredError) as exc:
            activation_fail(access_request=access_request, reason=str(exc))
            return None
    raise AssertionError("unreachable")  # itertools.count never ends


def _activation_complete(access_request: AccessRequest, credentials: IssuedCredentials) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = request_locked(access_request.pk)
            assert locked.expires_at is not None and locked.approved_at is not None
            IssuedCredential.objects.create(
                request=locked, **IssuedCredential.stored_fields(credentials, now)
            )
            request_move(
                access_request=locked,
                to_status=Status.ACTIVE,
                code="approvals.request.active",
                detail={
                    "access_key_id": credentials.access_key_id,
                    "session_expiration": credentials.expiration.isoformat(),
                    "expires_at": locked.expires_at.isoformat(),
                    "time_to_access_ms": round((now - locked.approved_at).total_seconds() * 1000),
                },
                fields={"activated_at": now},
            )
            enqueue_after_commit(Job.REVOKE, locked.pk, eta=locked.expires_at)
    except StaleTransition:
        # The sweeper gave this activation up for dead and failed it meanwhile: what we just
        # attached and issued must not outlive that decision.
        _aws_revoke(access_request)


def activation_fail(*, access_request: AccessRequest, reason: str) -> None:
    """Take back whatever an activation did in AWS, then ACTIVATING → FAILED.

    If AWS cannot be reached the request stays ACTIVATING and the sweeper retries the clean-up:
    FAILED promises that nothing is left attached.
    """
    try:
        _aws_revoke(access_request)
    except AwsError as exc:
        timeline_append(
            access_request=access_request,
            code="approvals.activation.cleanup_failed",
            outcome="failure",
            detail={"reason": reason, "error": str(exc)},
        )
        return
    with transaction.atomic():
        locked = request_locked(access_request.pk)
        if locked.status != Status.ACTIVATING:
            return
        request_move(
            access_request=locked,
            to_status=Status.FAILED,
            code="approvals.request.failed",
            outcome="failure",
            detail={"reason": reason},
            fields={"failure_reason": reason},
        )


def _principal_expectation(access_request: AccessRequest) -> PrincipalExpectation:
    """What the principal may keep once this request's grant is gone: the other live requests'
    grants and the one key the portal holds (any other key is a way back in)."""
    live = (
        AccessRequest.objects.filter(
            profile_id=access_request.profile_id,
            status__in=[Status.ACTIVATING, Status.ACTIVE],
            expires_at__isnull=False,
        )
        .exclude(pk=access_request.pk)
        # An offline kit's opening holds no grant on this principal: writing one would let the
        # portal's principal open sessions under the kit's source identity.
        .exclude(kind=RequestKind.OFFLINE)
        .select_related("profile")
    )
    try:
        key_id: str | None = runtime.principal_keys(
            access_request.profile.principal_arn
        ).access_key_id
    except runtime.MissingAwsKeys:
        key_id = None  # keys left alone; _keys_unverified_check says if there is more than one
    return PrincipalExpectation(
        live_grants=[_aws_grant(other) for other in live], access_key_id=key_id
    )


def _keys_unverified_check(access_request: AccessRequest, keys: set[str]) -> None:
    """Revocation could not tell the portal's key from others (no readable keys file in this
    process): deleting them could kill the portal's own, keeping them could keep a planted one.
    One key is the usual state; more is an alarm at once (the guard names them too), and the
    next revocation with the file readable deletes every key but the portal's."""
    if len(keys) <= 1:
        return
    principal = access_request.profile.principal_arn
    alarm_open(
        kind="principal_keys_unverified",
        title=(
            f"{principal} holds {len(keys)} access keys and revoking {access_request.pk} could "
            "not tell which is the portal's (its keys file is unreadable here): a key beside "
            "the portal's is a way back in; delete it and repair the file"
        ),
        dedup_key=f"principal_keys_unverified:{principal}:{','.join(sorted(keys))}"[:200],
        detail={"principal": principal, "keys": sorted(keys), "request": str(access_request.pk)},
        profile=access_request.profile,
        access_request=access_request,
    )


def _aws_revoke(access_request: AccessRequest) -> None:
    """Deny the request's sessions, detach its grant, and strip the principal of anything but
    the live grants and the portal's key (idempotent; raises unless AWS confirms it all)."""
    engine = runtime.access_engine()
    with transaction.atomic():
        # One revocation per profile at a time: each also rewrites the principal's policies.
        AccessProfile.objects.select_for_update().get(pk=access_request.profile_id)
        expectation = _principal_expectation(access_request)
        cut = engine.grant_revoke(
            access_request.profile.aws_target(),
            _aws_grant(access_request),
            principal=expectation,
        )
    if expectation.access_key_id is None:
        target = access_request.profile.aws_target()
        _keys_unverified_check(access_request, engine.principal_key_ids(target))
    if cut is not None:  # the role was full: every older session died, the live grants' too
        fallback.grants_reissue_after_cut(
            revoked=access_request, cut_before=cut, grant_of=_aws_grant
        )


def _revocation_start(access_request_id: RequestId, *, skip_locked: bool) -> AccessRequest | None:
    """The request, moved to REVOKING if its deadline has passed; None if nothing is due."""
    with transaction.atomic():
        access_request = (
            AccessRequest.objects.select_for_update(skip_locked=skip_locked)
            .select_related("profile")
            .filter(pk=access_request_id)
            .first()
        )
        if access_request is None:
            return None
        if access_request.status == Status.ACTIVE:
            assert access_request.expires_at is not None
            if access_request.expires_at > timezone.now():
                return None
            request_move(
                access_request=access_request,
                to_status=Status.REVOKING,
                code="approvals.revocation.deadline",
                detail={"expires_at": access_request.expires_at.isoformat()},
            )
        elif access_request.status != Status.REVOKING:
            return None
    return access_request


def request_revocation_drive(*, access_request_id: RequestId, skip_locked: bool = False) -> bool:
    """Finish a revocation that is due: at the deadline, or after an early revoke. Idempotent.

    Returns True when this call confirmed the revocation. AWS errors propagate (the caller
    retries; the sweeper always will).
    """
    access_request = _revocation_start(access_request_id, skip_locked=skip_locked)
    if access_request is None:
        return False
    _aws_revoke(access_request)
    with transaction.atomic():
        locked = request_locked(access_request.pk)
        if locked.status != Status.REVOKING:
            return False
        now = timezone.now()
        wiped = IssuedCredential.objects.filter(request=locked, wiped_at__isnull=True).update(
            sealed="", wiped_at=now
        )
        request_move(
            access_request=locked,
            to_status=Status.REVOKED,
            code="approvals.request.revoked",
            detail={
                "credentials_wiped": bool(wiped),
                "time_to_revoke_ms": locked.time_to_revoke_ms_if_revoked_at(now),
            },
            fields={"revoked_at": now},
        )
    return True


# A worker keeps retrying a revocation AWS refuses for this long past the deadline; after that
# the sweeper alone drives it (and the overdue alarm has long told people).
REVOCATION_RETRY_WINDOW = timedelta(minutes=10)


def request_revocation_run(*, access_request_id: RequestId) -> None:
    """The revocation job: drive it, and ask to be retried while AWS is unreachable."""
    try:
        request_revocation_drive(access_request_id=access_request_id)
    except TransientAwsError as exc:
        due = (
            AccessRequest.objects.filter(pk=access_request_id)
            .values_list("expires_at", flat=True)
            .first()
        )
        late = (timezone.now() - due).total_seconds() if due else 0.0
        if late > REVOCATION_RETRY_WINDOW.total_seconds():
            return
        raise RetryLater(str(exc), seconds=min(max(1.0, late / 4), 30.0)) from exc
