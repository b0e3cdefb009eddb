"""Signed checkpoints of the timeline, anchored outside the database (issue 14).

A checkpoint is a signed header naming the SHA-256 of the canonical list of every chain head
`[[chain, sequence, hash], ...]` (sorted by chain), their count and the number of events they
cover, and the digest of the checkpoint before it. The portal signs one only after verifying that
everything the previous checkpoint vouched for is still there unchanged and every event since
links to it, so a rewrite cannot be laundered into the next checkpoint: it raises an alarm
instead. Each is stored here, written to the anchor bucket (S3, Object Lock in COMPLIANCE mode:
`checkpoints/<n>.json` the signed header, `heads/<n>.json` the list) and sent to the webhooks
as `timeline.checkpoint`.

When a request ends its chain is also sealed: an event on the chain itself carries a signature of
the chain's head, so one request can be verified from its API timeline and the public key alone.
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from approvals import signatures
from approvals.models import AccessRequest, TimelineCheckpoint, TimelineEvent, TimelineHead
from approvals.services.alarms import alarm_open
from approvals.services.webhooks import webhooks_enqueue
from approvals.timeline import (
    Verification,
    chain_for,
    snapshot,
    timeline_append,
    timeline_verify,
    timeline_verify_since,
)
from awsaccess import anchor, runtime
from awsaccess.errors import AwsError

logger = logging.getLogger(__name__)

FORMAT = "breakglass-checkpoint/1"
CHECKPOINT_PURPOSE = "timeline.checkpoint"
SEAL_PURPOSE = "timeline.seal"
SEALED_EVENT = "approvals.timeline.sealed"
WEBHOOK_EVENT = "timeline.checkpoint"
_LOCK_ID = 0x6272_6B67_6C73  # any constant: one checkpoint computation at a time


def header_name(sequence: int) -> str:
    return f"checkpoints/{sequence:012d}.json"


def heads_name(sequence: int) -> str:
    return f"heads/{sequence:012d}.json"


def digest_of(value: Any) -> str:
    return hashlib.sha256(signatures.canonical_json(value)).hexdigest()


def anchor_location() -> anchor.AnchorLocation | None:
    if not settings.ANCHOR_BUCKET:
        return None
    return anchor.AnchorLocation(
        settings.ANCHOR_BUCKET, settings.ANCHOR_PREFIX, settings.ANCHOR_REGION
    )


@dataclass(frozen=True)
class SignedCheckpoint:
    header: dict[str, Any]
    signature: signatures.Signature
    heads: list[list[Any]] | None = None

    @property
    def sequence(self) -> int:
        return int(self.header["sequence"])

    @property
    def digest(self) -> str:
        return digest_of(self.header)

    def pins(self) -> dict[str, tuple[int, str]]:
        return {chain: (sequence, digest) for chain, sequence, digest in self.heads or []}

    def header_body(self) -> bytes:
        return signatures.canonical_json(
            {"header": self.header, "signature": self.signature.as_dict()}
        )

    def problem(self) -> str | None:
        """Why this checkpoint cannot be trusted (None: the signature and the list verify)."""
        if self.header.get("format") != FORMAT:
            return f"unknown checkpoint format {self.header.get('format')!r}"
        if not signatures.verify(
            CHECKPOINT_PURPOSE, self.header, self.signature.key_id, self.signature.value
        ):
            return f"checkpoint #{self.header.get('sequence')} signature does not verify"
        if self.heads is not None and (
            digest_of(self.heads) != self.header["heads_digest"]
            or len(self.heads) != self.header["chain_count"]
        ):
            return f"checkpoint #{self.sequence} head list does not match its signed digest"
        return None


def checkpoint_of(row: TimelineCheckpoint) -> SignedCheckpoint:
    return SignedCheckpoint(row.header, signatures.Signature(row.key_id, row.signature), row.heads)


def checkpoint_latest() -> SignedCheckpoint | None:
    """The newest checkpoint stored here, if its signature and head list verify."""
    row = TimelineCheckpoint.objects.order_by("-sequence").first()
    if row is None:
        return None
    checkpoint = checkpoint_of(row)
    return None if checkpoint.problem() else checkpoint


def _tamper_alarm(verification: Verification, where: str) -> None:
    chain = verification.broken_chain or "the timeline"
    alarm_open(
        kind="timeline_tampered",
        title=f"Timeline tampered with ({where}): {chain} #{verification.broken_sequence}: "
        f"{verification.reason}",
        dedup_key=f"timeline-tampered:{chain}:{verification.broken_sequence}",
        detail={"chain": chain, "sequence": verification.broken_sequence, "where": where},
    )


def request_seal(*, access_request_id: Any) -> None:
    """Sign an ended request's chain at its last event, on the chain itself. Idempotent."""
    access_request = AccessRequest.objects.filter(pk=access_request_id).first()
    if access_request is None:
        return
    chain = chain_for(access_request)
    latest = checkpoint_latest()
    with transaction.atomic():
        head = TimelineHead.objects.select_for_update().filter(chain=chain).first()
        if head is None:
            return
        last = TimelineEvent.objects.filter(chain=chain, sequence=head.sequence).first()
        if last is not None and last.code == SEALED_EVENT:
            return
        verification = timeline_verify(chain=chain, pins=latest.pins() if latest else None)
        if not verification.ok:
            _tamper_alarm(verification, "sealing a request")
            return
        payload = {"chain": chain, "sequence": head.sequence, "hash": head.hash}
        signature = signatures.sign(SEAL_PURPOSE, payload)
        timeline_append(
            access_request=access_request,
            code=SEALED_EVENT,
            detail={
                "sealed_sequence": head.sequence,
                "sealed_hash": head.hash,
                "signature": signature.as_dict(),
            },
        )


def request_ended_record(*, access_request_id: Any) -> None:
    """An ended request: seal its chain, then checkpoint the whole timeline."""
    request_seal(access_request_id=access_request_id)
    timeline_checkpoint(reason="request ended")


def timeline_checkpoint(*, reason: str = "periodic") -> TimelineCheckpoint | None:
    """Verify what the last checkpoint vouched for and everything since, then sign, store and
    publish a new checkpoint (None: nothing new, or tampering found and alarmed)."""
    checkpoints_publish()
    with snapshot():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
        row = _checkpoint_make(reason)
    if row is not None:
        checkpoints_publish()
        row.refresh_from_db()
    return row


def _checkpoint_make(reason: str) -> TimelineCheckpoint | None:
    previous = checkpoint_latest()
    if previous is None and TimelineCheckpoint.objects.exists():
        _tamper_alarm(
            Verification(0, reason="the newest stored checkpoint does not verify"), "checkpoint"
        )
        return None
    if previous is not None:
        verification = timeline_verify_since(verified=previous.pins())
    else:
        verification = timeline_verify()
    if not verification.ok:
        _tamper_alarm(verification, "checkpoint")
        return None
    rows = list(TimelineHead.objects.order_by("chain").values_list("chain", "sequence", "hash"))
    heads = [list(row) for row in rows]
    if previous is not None and heads == previous.heads:
        return None
    header = {
        "format": FORMAT,
        "sequence": previous.sequence + 1 if previous else 1,
        "created_at": timezone.now().isoformat(timespec="microseconds"),
        "previous_digest": previous.digest if previous else "",
        "chain_count": len(heads),
        "event_count": sum(sequence for _, sequence, _ in rows),
        "heads_digest": digest_of(heads),
        "reason": reason,
    }
    checkpoint = SignedCheckpoint(header, signatures.sign(CHECKPOINT_PURPOSE, header), heads)
    return _checkpoint_store(checkpoint)


def _checkpoint_store(checkpoint: SignedCheckpoint) -> TimelineCheckpoint | None:
    try:
        with transaction.atomic():
            row = TimelineCheckpoint.objects.create(
                sequence=checkpoint.sequence,
                created_at=timezone.now(),
                header=checkpoint.header,
                digest=checkpoint.digest,
                key_id=checkpoint.signature.key_id,
                signature=checkpoint.signature.value,
                heads=checkpoint.heads,
            )
    except IntegrityError:
        return None  # another worker made this one a moment ago
    # Only the newest keeps its list here; every list stays in the anchor.
    TimelineCheckpoint.objects.filter(sequence__lt=row.sequence).exclude(heads=None).update(
        heads=None
    )
    location = anchor_location()
    webhooks_enqueue(
        event=WEBHOOK_EVENT,
        payload={
            "checkpoint": {
                **checkpoint.header,
                "digest": checkpoint.digest,
                "signature": checkpoint.signature.as_dict(),
                "anchor": {
                    "bucket": location.bucket,
                    "header": location.key(header_name(row.sequence)),
                    "heads": location.key(heads_name(row.sequence)),
                }
                if location
                else None,
            }
        },
    )
    return row


def _anchor_once(location: anchor.AnchorLocation, name: str, body: bytes) -> str:
    """Write `body` under `name` unless it is there already (a retry after a partial publish)
    → its version id. Something else under that name means checkpoints were removed here."""
    broker = runtime.broker_connection()
    for version in anchor.anchor_versions(broker, location, name):
        if version.body == body:
            return version.version_id
        raise CheckpointConflict(name)
    return anchor.anchor_put(broker, location, name, body)


class CheckpointConflict(Exception):
    """The anchor already holds another checkpoint under this number."""


def checkpoints_publish() -> int:
    """Write every checkpoint not yet in the anchor bucket, oldest first → how many were."""
    location = anchor_location()
    if location is None:
        return 0
    published = 0
    for row in TimelineCheckpoint.objects.filter(anchored_at=None).order_by("sequence"):
        checkpoint = checkpoint_of(row)
        if checkpoint.problem() or row.heads is None:
            continue  # not the portal's; verification reports it
        try:
            version = _anchor_once(location, header_name(row.sequence), checkpoint.header_body())
            _anchor_once(location, heads_name(row.sequence), signatures.canonical_json(row.heads))
        except CheckpointConflict as conflict:
            _tamper_alarm(
                Verification(0, None, str(conflict), row.sequence, "another checkpoint with "
                             "this number is in the anchor: stored checkpoints were removed"),
                "publishing a checkpoint",
            )  # fmt: skip
            return published
        except AwsError as exc:
            logger.warning("checkpoint #%s not anchored yet: %s", row.sequence, exc)
            return published
        TimelineCheckpoint.objects.filter(pk=row.pk).update(
            anchor_key=location.key(header_name(row.sequence)),
            anchor_version=version,
            anchored_at=timezone.now(),
        )
        published += 1
    return published
