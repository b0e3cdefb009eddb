"""The offline kit (issue 18): created and rotated here with the provisioner identity, opened
without the portal by `breakglass kit open`, and reconciled when the portal is back.

The portal keeps no usable copy of a kit's key: only its id, fingerprint, access key id and MFA
serial, the custodians' names, and the public key that verifies the records of its openings.
Each opening (one `offline-<kit>-<time>` source identity) becomes an incident request of its own
(kind offline), raises a security alarm and marks the kit exposed, whichever the portal sees
first: the AssumeRole, a call of the session, or the custodians' imported record.
"""

import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import offline_kit_format as kit_format
from approvals.errors import NotAllowed, NotFound, PortalError, RequestInvalid
from approvals.models import (
    AccessProfile,
    AccessRequest,
    Drill,
    KitState,
    OfflineKit,
    OfflineOpening,
    RequestKind,
    Status,
)
from approvals.services import offline_kit_files as kit_files
from approvals.services.alarms import alarm_open
from approvals.services.grants import request_revocation_drive
from approvals.services.lifecycle import request_move
from approvals.services.notifications import notify_request_changed
from approvals.services.webhooks import webhooks_request_changed
from approvals.timeline import timeline_append
from awsaccess import offline_kit as aws_kit
from awsaccess.errors import AwsError
from awsaccess.types import AwsConnection

logger = logging.getLogger(__name__)

OFFLINE_PREFIX = aws_kit.OFFLINE_SOURCE_PREFIX
_SOURCE_IDENTITY = re.compile(r"^offline-(?P<kit>[0-9a-f]{10})-(?P<time>\d{8}T\d{6}Z)$")
_TIME = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class KitFiles:
    kit: OfflineKit
    kit_file: Path
    share_files: dict[str, Path]  # custodian -> file


def is_offline_identity(source_identity: str) -> bool:
    return source_identity.startswith(OFFLINE_PREFIX)


# -- creating and rotating ---------------------------------------------------------------------


def _kit_issue(
    *,
    profile: AccessProfile,
    custodians: list[str],
    threshold: int,
    out_dir: Path,
    connection: AwsConnection,
) -> tuple[OfflineKit, KitFiles]:
    """New key and MFA device on the profile's offline user, sealed and split into files; the
    kit row is built but not saved. On failure the new AWS credentials are taken back."""
    try:
        kit_format.custodians_check(custodians, threshold)
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from None
    kit_id = secrets.token_hex(5)
    kit_files.out_dir_ready(out_dir, custodians, kit_id)
    principal_arn = aws_kit.offline_principal_arn(profile.account_id, profile.slug)
    aws_kit.offline_principal_ensure(connection, profile.aws_target(), principal_arn)
    issued = aws_kit.offline_credentials_issue(connection, principal_arn, kit_id)
    try:
        now = timezone.now()
        sealed = kit_format.kit_seal(
            kit_format.KitSpec(
                kit_id=kit_id,
                profile=profile.slug,
                account_id=profile.account_id,
                region=profile.region,
                role_arn=profile.role_arn,
                principal_arn=principal_arn,
                access_key_id=issued.access_key_id,
                mfa_serial=issued.mfa_serial,
                max_session_seconds=profile.role_max_session_seconds,
                endpoint_url=connection.endpoint_url,
                custodians=tuple(custodians),
                threshold=threshold,
                created_at=now.astimezone(UTC).isoformat(timespec="seconds"),
            ),
            secret_access_key=issued.secret_access_key,
            mfa_seed=issued.mfa_seed,
        )
        kit_file, share_files = kit_files.kit_files_write(out_dir, kit_id, sealed)
    except BaseException:
        aws_kit.offline_credentials_retire(
            connection, principal_arn, issued.access_key_id, issued.mfa_serial
        )
        raise
    kit = OfflineKit(
        id=kit_id,
        profile=profile,
        fingerprint=sealed.fingerprint,
        principal_arn=principal_arn,
        access_key_id=issued.access_key_id,
        mfa_serial=issued.mfa_serial,
        record_public_key=sealed.record_public_key,
        custodians=list(custodians),
        threshold=threshold,
        created_at=now,
    )
    return kit, KitFiles(kit, kit_file, share_files)


def _kit_event(kit: OfflineKit, code: str, detail: dict[str, Any]) -> None:
    timeline_append(
        access_request=None,
        code=code,
        detail={
            "kit": kit.id,
            "profile": kit.profile.slug,
            "fingerprint": kit.fingerprint,
            "access_key_id": kit.access_key_id,
            "custodians": kit.custodians,
            "threshold": kit.threshold,
            **detail,
        },
    )


def kit_create(
    *,
    profile_slug: str,
    custodians: list[str],
    threshold: int,
    out_dir: Path,
    connection: AwsConnection,
) -> KitFiles:
    """A profile's first kit (a live kit is replaced only by rotating it)."""
    profile = AccessProfile.objects.filter(slug=profile_slug).first()
    if profile is None:
        raise NotFound(f"unknown access profile {profile_slug!r}")
    live = profile.offline_kits.exclude(state=KitState.ROTATED).first()
    if live is not None:
        raise NotAllowed(
            f"profile {profile.slug} already has kit {live.id} ({live.state}); "
            f"replace it with kit_rotate {live.id}"
        )
    kit, files = _kit_issue(
        profile=profile,
        custodians=custodians,
        threshold=threshold,
        out_dir=out_dir,
        connection=connection,
    )
    with transaction.atomic():
        kit.save(force_insert=True)
        _kit_event(kit, "approvals.kit.created", {"principal": kit.principal_arn})
    return files


def _kit_to_rotate(kit_id: str) -> OfflineKit:
    kit = OfflineKit.objects.select_related("profile", "replaced_by").filter(pk=kit_id).first()
    if kit is None:
        raise NotFound(f"unknown offline kit {kit_id!r}")
    if kit.state == KitState.ROTATED:
        raise NotAllowed(f"kit {kit.id} was rotated already (by {kit.replaced_by_id})")
    return kit


def kit_rotate(
    *,
    kit_id: str,
    out_dir: Path,
    connection: AwsConnection,
    custodians: list[str] | None = None,
    threshold: int | None = None,
) -> KitFiles:
    """A new key, MFA device and shares; the old key and device deleted (so the old shares
    open nothing) and the old kit's live sessions revoked. Recorded on the system chain."""
    old = _kit_to_rotate(kit_id)
    if old.replaced_by_id:
        raise NotAllowed(
            f"kit {old.id} was replaced by {old.replaced_by_id} but is not retired yet: "
            f"finish that rotation (kit_rotate {old.id} without --out) before another"
        )
    new, files = _kit_issue(
        profile=old.profile,
        custodians=custodians or list(old.custodians),
        threshold=threshold or old.threshold,
        out_dir=out_dir,
        connection=connection,
    )
    # The new kit is on record before the old key goes: if retiring fails, the state says
    # what is still live and a rerun finishes the rotation without issuing a third kit.
    with transaction.atomic():
        new.save(force_insert=True)
        OfflineKit.objects.filter(pk=old.pk).update(replaced_by=new)
    _rotation_finish(old, new, connection, resumed=False)
    return files


def kit_rotation_finish(*, kit_id: str, connection: AwsConnection) -> OfflineKit | None:
    """Finish a rotation that issued the new kit but failed before retiring the old one →
    the new kit (its files are where that run wrote them), or None if there is none to finish."""
    old = _kit_to_rotate(kit_id)
    if old.replaced_by is None:
        return None
    _rotation_finish(old, old.replaced_by, connection, resumed=True)
    return old.replaced_by


def _rotation_finish(
    old: OfflineKit, new: OfflineKit, connection: AwsConnection, *, resumed: bool
) -> None:
    revoked = _openings_revoke(old)
    try:
        aws_kit.offline_credentials_retire(
            connection, old.principal_arn, old.access_key_id, old.mfa_serial
        )
    except AwsError as exc:
        _rotation_stuck(old, new, exc)
    with transaction.atomic():
        now = timezone.now()
        OfflineKit.objects.filter(pk=old.pk).update(state=KitState.ROTATED, rotated_at=now)
        _kit_event(
            old,
            "approvals.kit.rotated",
            {
                "was": old.state,
                "replaced_by": new.id,
                "new_fingerprint": new.fingerprint,
                "new_access_key_id": new.access_key_id,
                "old_key_deleted": old.access_key_id,
                "sessions_revoked": revoked,
                "resumed": resumed,
            },
        )


def _rotation_stuck(old: OfflineKit, new: OfflineKit, exc: AwsError) -> NoReturn:
    """The old key could not be deleted: two live kits, and the old (maybe exposed) shares
    still open the role. Recorded, alarmed, and refused loudly with the way out."""
    still_live = (
        f"kit {old.id}'s key {old.access_key_id} and MFA device {old.mfa_serial} are still "
        f"live (its shares still open {old.profile.slug}) beside new kit {new.id}"
    )
    detail = {"replaced_by": new.id, "error": str(exc)[:500]}
    _kit_event(old, "approvals.kit.rotation_incomplete", detail)
    alarm_open(
        kind="offline_kit_rotation_incomplete",
        title=f"Rotation of offline kit {old.id} did not finish: {still_live}",
        dedup_key=f"offline-rotation:{old.id}",
        detail={"kit": old.id, **detail},
        profile=old.profile,
    )
    raise PortalError(
        f"ROTATION NOT FINISHED: {still_live}. AWS refused to retire it ({exc}). Fix that, "
        f"then run kit_rotate {old.id} again: it finishes without issuing another kit",
        code="rotation_incomplete",
    ) from exc


def _openings_revoke(kit: OfflineKit) -> list[str]:
    """End the kit's live sessions through the portal's own revocation (a deny on the role for
    their source identity); what AWS does not confirm now, the sweeper finishes."""
    revoked = []
    live = AccessRequest.objects.filter(
        offline_opening__kit=kit, status=Status.ACTIVE, kind=RequestKind.OFFLINE
    )
    for access_request in live.select_related("profile"):
        with transaction.atomic():
            request_move(
                access_request=access_request,
                to_status=Status.REVOKING,
                code="approvals.offline.revoked_on_rotation",
                detail={"kit": kit.id},
                fields={"revoke_requested_at": timezone.now()},
            )
        try:
            request_revocation_drive(access_request_id=access_request.pk)
        except AwsError as exc:
            logger.warning("revocation of %s left to the sweeper: %s", access_request.pk, exc)
        revoked.append(str(access_request.pk))
    return revoked


# -- reconciling an opening --------------------------------------------------------------------


def _kit_named(source_identity: str, profile: AccessProfile) -> tuple[OfflineKit | None, str]:
    """The kit an `offline-` source identity names, on this profile's role → (kit, why not)."""
    match = _SOURCE_IDENTITY.match(source_identity)
    if match is None:
        return None, f"source identity {source_identity!r} is not an offline kit's"
    kit = OfflineKit.objects.select_related("profile").filter(pk=match["kit"]).first()
    if kit is None or kit.profile.role_arn != profile.role_arn:
        return None, f"source identity {source_identity!r} names no offline kit of this role"
    return kit, ""


def _key_holders(principal_arn: str, profile: AccessProfile) -> str:
    """When the caller is an offline user, whose kits' key it used: the shares were combined
    (or the key leaked) even if no opening is on the record, so security is told to rotate."""
    live = OfflineKit.objects.filter(profile=profile, principal_arn=principal_arn).exclude(
        state=KitState.ROTATED
    )
    ids = ", ".join(sorted(live.values_list("id", flat=True)))
    return f", with the key of kit {ids}: rotate it" if ids else ""


def offline_use_explain(*, use: Any, profile: AccessProfile) -> tuple[AccessRequest | None, str]:
    """An AssumeRole with an `offline-` source identity (an approvals.watch_events.RoleUse) →
    (the opening's incident request, "") or (None, why it is no kit's opening). Only a
    successful AssumeRole by the named kit's own user is an opening: anything else is an
    unexplained use, alarmed, that marks no kit exposed and opens no incident."""
    kit, why = _kit_named(use.source_identity, profile)
    if kit is None:
        return None, why + _key_holders(use.principal_arn, profile)
    if use.principal_arn != kit.principal_arn:
        return None, f"assumed by {use.principal_arn or 'unknown'}, not kit {kit.id}'s user"
    if use.error_code:
        # Signed with the kit's key: its shares were combined (or the key leaked).
        return None, f"kit {kit.id}'s key, refused by AWS ({use.error_code}): kit_rotate {kit.id}"
    expires = _parse_time(use.credentials_expiration)
    return offline_incident_ensure(
        kit=kit, source_identity=use.source_identity, seen_at=use.event_time, expires_at=expires
    ), ""


def offline_call_request(
    *, source_identity: str, profile: AccessProfile, seen_at: datetime
) -> AccessRequest | None:
    """The incident request of the opening whose session made a call (None: no kit's)."""
    kit, _ = _kit_named(source_identity, profile)
    if kit is None:
        return None
    return offline_incident_ensure(kit=kit, source_identity=source_identity, seen_at=seen_at)


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def offline_incident_ensure(
    *,
    kit: OfflineKit,
    source_identity: str,
    seen_at: datetime,
    expires_at: datetime | None = None,
) -> AccessRequest:
    """The opening's incident request, created once (whoever sees it first): ACTIVE from the
    moment it was opened until its session ends at the latest, with an alarm to everyone, and
    the kit marked exposed."""
    existing = OfflineOpening.objects.filter(source_identity=source_identity).first()
    if existing is not None:
        return existing.request
    try:
        with transaction.atomic():
            return _incident_create(kit, source_identity, seen_at, expires_at)
    except IntegrityError:  # another poller recorded the same opening a moment ago
        return OfflineOpening.objects.get(source_identity=source_identity).request


def _incident_create(
    kit: OfflineKit, source_identity: str, seen_at: datetime, expires_at: datetime | None
) -> AccessRequest:
    profile = kit.profile
    longest = seen_at + timedelta(seconds=profile.role_max_session_seconds)
    ends = min(expires_at, longest) if expires_at else longest
    drilling = Drill.objects.filter(kit=kit, finished_at__isnull=True).exists()
    access_request = AccessRequest.objects.create(
        profile=profile,
        requester_name=f"offline kit {kit.id}",
        ticket=f"OFFLINE-{int(seen_at.timestamp())}",
        justification=(
            f"Offline kit {kit.id} of {profile.slug} was opened without the portal "
            f"(source identity {source_identity}); the custodians' record says who and why."
        ),
        duration_minutes=max(1, math.ceil((ends - seen_at).total_seconds() / 60)),
        status=Status.ACTIVE,
        created_at=seen_at,
        approval_deadline=seen_at,
        status_changed_at=timezone.now(),
        activated_at=seen_at,
        expires_at=ends,
        is_drill=drilling,
        kind=RequestKind.OFFLINE,
    )
    OfflineOpening.objects.create(
        kit=kit, source_identity=source_identity, request=access_request, seen_at=seen_at
    )
    detail = {"kit": kit.id, "source_identity": source_identity, "expires_at": ends.isoformat()}
    event = timeline_append(
        access_request=access_request,
        code="approvals.offline.opened",
        outcome="alarm",
        detail=detail,
    )
    OfflineKit.objects.filter(pk=kit.pk, state=KitState.SEALED).update(
        state=KitState.EXPOSED, exposed_at=timezone.now()
    )
    drill = "Drill: " if drilling else ""
    alarm_open(
        kind="offline_kit_opened",
        title=f"{drill}Offline kit {kit.id} of {profile.slug} was opened without the portal "
        f"({source_identity}); rotate it with kit_rotate {kit.id}",
        dedup_key=f"offline:{source_identity}",
        detail=detail,
        profile=profile,
        access_request=access_request,
    )
    changes = {"status": Status.ACTIVE, "expires_at": ends}
    webhooks_request_changed(
        access_request=access_request, from_status=None, changes=changes, timeline_event=event
    )
    notify_request_changed(access_request_id=access_request.pk, event="active")
    return access_request


def offline_call_unexplained(*, call: Any, access_request: AccessRequest) -> str:
    """Why a call of an opening's session is an alarm beyond the opening's own ("" if none)."""
    if call.region and call.region != access_request.profile.region and call.service != "iam":
        return f"called in {call.region}, not in {access_request.profile.region}"
    return ""


# -- the custodians' record --------------------------------------------------------------------


def kit_record_import(*, signed: dict[str, Any]) -> OfflineOpening:
    """Verify the record with its kit's public key and put it on the opening's incident record
    (creating that record if the watch never saw the opening). The same record twice is a
    no-op; a different one for the same opening is refused."""
    record = signed.get("record") if isinstance(signed, dict) else None
    if not isinstance(record, dict) or signed.get("format") != kit_format.RECORD_FORMAT:
        raise RequestInvalid("not a record of an offline kit opening")
    kit = OfflineKit.objects.select_related("profile").filter(pk=record.get("kit_id")).first()
    if kit is None:
        raise NotFound(f"no offline kit {record.get('kit_id')!r} in this portal")
    if record.get("fingerprint") != kit.fingerprint:
        raise RequestInvalid(f"the record names another version of kit {kit.id}")
    if not kit_format.record_signature_valid(signed, kit.record_public_key):
        raise RequestInvalid(f"the record's signature does not verify with kit {kit.id}'s key")
    source_identity = str(record.get("source_identity", ""))
    opened_at = _parse_time(str(record.get("opened_at", "")))
    if _kit_named(source_identity, kit.profile)[0] != kit or opened_at is None:
        raise RequestInvalid("the record's source identity or time is not its kit's")
    with transaction.atomic():
        access_request = offline_incident_ensure(
            kit=kit, source_identity=source_identity, seen_at=opened_at
        )
        opening = OfflineOpening.objects.select_for_update().get(request=access_request)
        if opening.record is not None:
            if opening.record == signed:
                return opening
            raise NotAllowed(f"another record of {source_identity} was imported already")
        opening.record = signed
        opening.record_imported_at = timezone.now()
        opening.save(update_fields=["record", "record_imported_at"])
        timeline_append(
            access_request=access_request,
            code="approvals.offline.record_imported",
            detail={"signature_verified": True, **_record_summary(record)},
        )
    return opening


def _record_summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: record.get(key)
        for key in (
            "kit_id",
            "source_identity",
            "opened_at",
            "reason",
            "shares",
            "operator",
            "host",
            "session_access_key_id",
            "expiration",
        )
    }
